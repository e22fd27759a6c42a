import { relative, sep } from 'node:path';
import { writeFileAtomically } from '../io/atomic-write.js';
import type { CompressedRle } from '../structures/rle.js';
import type { AnnotateSettings, ImageOutcome } from './types.js';

export const ANNOTATIONS_FILE = 'annotations.json';
export const ERRORS_FILE = 'errors.json';

export interface CocoCategory {
  id: number;
  name: string;
  /** 'vocabulary' for category names, 'sentence' for sentences. */
  supercategory: 'vocabulary' | 'sentence';
}

export interface CocoImageRecord {
  id: number;
  /** Relative to the folder annotations.json is in, '/'-separated (so the folder trains as is). */
  file_name: string;
  width: number;
  height: number;
}

export interface CocoAnnotationRecord {
  id: number;
  image_id: number;
  category_id: number;
  bbox: [number, number, number, number];
  area: number;
  iscrowd: 0;
  score: number;
  segmentation?: CompressedRle;
}

export interface CocoDataset {
  info: { description: string; model: string; threshold: number };
  images: CocoImageRecord[];
  categories: CocoCategory[];
  annotations: CocoAnnotationRecord[];
}

export interface ImageError {
  file: string;
  reason: string;
}

/** One category per prompt, in prompt order: id 1 is the first vocabulary word. */
export function promptCategories(settings: AnnotateSettings): CocoCategory[] {
  return [
    ...settings.vocabulary.map((name) => ({ name, supercategory: 'vocabulary' as const })),
    ...settings.sentences.map((name) => ({ name, supercategory: 'sentence' as const })),
  ].map((c, i) => ({ id: i + 1, ...c }));
}

/**
 * The dataset of a finished run. Everything follows from the image order, never from the order
 * in which images finished: image i has id i + 1 and annotation ids count up through the images
 * in order, so a resumed or distributed run writes the same file as one uninterrupted process.
 */
export function buildCocoDataset(
  imagePaths: readonly string[],
  outDir: string,
  settings: AnnotateSettings,
  model: string,
  outcomes: ReadonlyMap<number, ImageOutcome>,
): { dataset: CocoDataset; errors: ImageError[] } {
  const images: CocoImageRecord[] = [];
  const annotations: CocoAnnotationRecord[] = [];
  const errors: ImageError[] = [];
  imagePaths.forEach((path, i) => {
    const outcome = outcomes.get(i);
    if (outcome === undefined) throw new Error(`image ${i} (${path}) has no outcome yet`);
    if (!outcome.ok) {
      errors.push({ file: path, reason: outcome.reason });
      return;
    }
    const { width, height, objects } = outcome.result;
    images.push({ id: i + 1, file_name: relative(outDir, path).split(sep).join('/'), width, height });
    for (const o of objects) {
      annotations.push({
        id: annotations.length + 1,
        image_id: i + 1,
        category_id: o.prompt + 1,
        bbox: o.bbox,
        area: o.area,
        iscrowd: 0,
        score: o.score,
        ...(o.segmentation ? { segmentation: o.segmentation } : {}),
      });
    }
  });
  const info = { description: 'ape annotate', model, threshold: settings.threshold };
  return { dataset: { info, images, categories: promptCategories(settings), annotations }, errors };
}

/**
 * Writes the dataset one record per line (valid JSON, and never one string the size of the
 * whole file, which millions of images would exceed), atomically: a reader sees the old file
 * or the new one.
 */
export async function writeCocoDataset(path: string, dataset: CocoDataset): Promise<void> {
  await writeFileAtomically(path, async (handle) => {
    const list = async (key: string, records: readonly unknown[], last: boolean) => {
      await handle.write(`${JSON.stringify(key)}: [`);
      let chunk = '';
      for (let i = 0; i < records.length; i++) {
        chunk += `${i === 0 ? '' : ','}\n  ${JSON.stringify(records[i])}`;
        if (chunk.length > 1 << 20) {
          await handle.write(chunk);
          chunk = '';
        }
      }
      await handle.write(`${chunk}${records.length > 0 ? '\n' : ''}]${last ? '' : ','}\n`);
    };
    await handle.write(`{"info": ${JSON.stringify(dataset.info)},\n`);
    await list('categories', dataset.categories, false);
    await list('images', dataset.images, false);
    await list('annotations', dataset.annotations, true);
    await handle.write('}\n');
  });
}
