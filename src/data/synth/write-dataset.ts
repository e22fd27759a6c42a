import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodePng } from '../../io/image-node.js';
import { Rng } from '../../util/random.js';
import { writeJsonFile } from '../../util/write-json.js';
import { SYNTH_CATEGORIES, IGNORE_LABEL } from './categories.js';
import {
  DATASET_FILES,
  SEGMENT_CATEGORY,
  imageFileName,
  type CocoAnnotation,
  type DatasetInfo,
  type GroundingFile,
  type InstancesFile,
  type SegmentsFile,
  type SemanticIndexFile,
} from './formats.js';
import { hash2 } from './noise.js';
import { sceneToRecords, type IdCounters } from './records.js';
import { DEFAULT_SYNTH_CONFIG, generateScene, type SynthConfig } from './scene.js';

export interface SynthDatasetOptions {
  images: number;
  seed: number;
  /** Square image side (default 256); `config.width/height` override it. */
  size?: number;
  config?: Partial<SynthConfig>;
  /**
   * Replace a split already in `outDir` (its images/, semantic/ and JSON files are deleted first).
   * Without it a non-empty `outDir` is refused, so that stale images never mix with new ones.
   */
  overwrite?: boolean;
  /** Called after each image is written (for a progress bar). */
  onImage?: (done: number, total: number) => void;
}

export interface SynthDatasetSummary {
  images: number;
  things: number;
  stuff: number;
  groundingObjects: number;
  sentences: number;
  segments: number;
}

/**
 * The random stream of image `index` of a split: a function of (seed, index) only, so any image
 * can be regenerated alone and a longer split starts with the images of a shorter one.
 */
export function sceneRng(seed: number, index: number): Rng {
  return new Rng(Math.floor(hash2(index, 0x5eed, seed) * 4294967296));
}

export function resolveSynthConfig(options: Pick<SynthDatasetOptions, 'size' | 'config'>): SynthConfig {
  const size = options.size ?? DEFAULT_SYNTH_CONFIG.width;
  return { ...DEFAULT_SYNTH_CONFIG, width: size, height: size, ...options.config };
}

/**
 * Generates a split into `outDir` (see formats.ts for the layout). The same options give the
 * same bytes in every file: all randomness is seeded, JSON is written in a fixed key order and
 * PNGs are encoded with fixed settings.
 */
export async function writeSynthDataset(outDir: string, options: SynthDatasetOptions): Promise<SynthDatasetSummary> {
  if (!Number.isInteger(options.images) || options.images < 1)
    throw new Error(`writeSynthDataset: images must be a positive integer, got ${options.images}`);
  if (!Number.isInteger(options.seed))
    throw new Error(`writeSynthDataset: seed must be an integer, got ${options.seed}`);
  const config = resolveSynthConfig(options);
  await prepareOutput(outDir, options.overwrite ?? false);
  await mkdir(join(outDir, DATASET_FILES.images), { recursive: true });
  await mkdir(join(outDir, DATASET_FILES.semantic), { recursive: true });

  const info: DatasetInfo = {
    description: 'ape synthetic perception world',
    version: 1,
    seed: options.seed,
    width: config.width,
    height: config.height,
    min_objects: config.minObjects,
    max_objects: config.maxObjects,
  };
  const instances: InstancesFile = { info, images: [], categories: [...SYNTH_CATEGORIES], annotations: [] };
  const grounding: GroundingFile = { info, images: [], categories: [...SYNTH_CATEGORIES], annotations: [] };
  const segments: SegmentsFile = { info, images: [], categories: [{ ...SEGMENT_CATEGORY }], annotations: [] };
  const semanticIndex: SemanticIndexFile = {
    ignore_label: IGNORE_LABEL,
    categories: SYNTH_CATEGORIES.map((c) => ({ id: c.id, name: c.name, isthing: c.isthing })),
    images: [],
  };
  const ids: IdCounters = { instance: 1, grounding: 1, segment: 1 };
  let sentences = 0;
  let things = 0;

  for (let index = 0; index < options.images; index++) {
    const rng = sceneRng(options.seed, index);
    const scene = generateScene(config, rng);
    const imageId = index + 1;
    const fileName = imageFileName(imageId);
    const records = sceneToRecords(scene, imageId, fileName, ids, rng);
    await writeFile(join(outDir, DATASET_FILES.images, fileName), await encodePng(scene.image));
    await writeFile(join(outDir, DATASET_FILES.semantic, fileName), await encodePng(records.semantic));
    instances.images.push(records.image);
    grounding.images.push(records.image);
    segments.images.push(records.image);
    semanticIndex.images.push({
      id: imageId,
      file_name: fileName,
      sem_seg_file_name: `${DATASET_FILES.semantic}/${fileName}`,
    });
    instances.annotations.push(...records.instances);
    grounding.annotations.push(...records.grounding);
    segments.annotations.push(...records.segments);
    things += scene.things.length;
    sentences += records.grounding.reduce((n, a) => n + a.sentences.length, 0);
    options.onImage?.(index + 1, options.images);
  }

  await writeFile(join(outDir, DATASET_FILES.instances), cocoJson(instances));
  await writeFile(join(outDir, DATASET_FILES.grounding), cocoJson(grounding));
  await writeFile(join(outDir, DATASET_FILES.segments), cocoJson(segments));
  await writeJsonFile(join(outDir, DATASET_FILES.semanticIndex), semanticIndex, 1);
  return {
    images: options.images,
    things,
    stuff: instances.annotations.length - things,
    groundingObjects: grounding.annotations.length,
    sentences,
    segments: segments.annotations.length,
  };
}

async function prepareOutput(outDir: string, overwrite: boolean): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(outDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (entries.length === 0) return;
  const ours = new Set<string>(Object.values(DATASET_FILES));
  const foreign = entries.filter((e) => !ours.has(e));
  if (!overwrite) throw new Error(`writeSynthDataset: ${outDir} is not empty; choose a new folder or pass overwrite`);
  if (foreign.length > 0)
    throw new Error(
      `writeSynthDataset: ${outDir} holds files that are not part of a split (${foreign.slice(0, 3).join(', ')}); not overwriting`,
    );
  for (const e of entries) await rm(join(outDir, e), { recursive: true, force: true });
}

/** COCO JSON with one image or annotation per line: compact, yet diff- and grep-friendly. */
function cocoJson(file: {
  info: DatasetInfo;
  images: unknown[];
  categories: unknown[];
  annotations: CocoAnnotation[] | unknown[];
}): string {
  const list = (items: unknown[]): string =>
    items.length === 0 ? '[]' : `[\n${items.map((x) => JSON.stringify(x)).join(',\n')}\n]`;
  return `{"info": ${JSON.stringify(file.info)},\n"images": ${list(file.images)},\n"categories": ${list(file.categories)},\n"annotations": ${list(file.annotations)}\n}\n`;
}
