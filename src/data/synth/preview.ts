import { join } from 'node:path';
import { readImage } from '../../io/image-node.js';
import { readJsonFile } from '../readers/json-file.js';
import type { RgbImage } from '../../io/image-types.js';
import { decodeRle } from '../../structures/rle.js';
import { decompressRle } from '../../structures/rle-string.js';
import { contactSheet } from '../../viz/contact-sheet.js';
import { blit, createRgbImage } from '../../viz/image.js';
import { drawMaskContour } from '../../viz/mask.js';
import { drawOverlays, type OverlayInstance } from '../../viz/overlay.js';
import { distinctColor, type Rgb } from '../../viz/palette.js';
import { categoryById } from './categories.js';
import { DATASET_FILES, type CocoImage, type GroundingFile, type InstancesFile } from './formats.js';

export interface PreviewOptions {
  /** How many images (the first ones of the split). */
  images?: number;
  columns?: number;
  /** Sentences shown (and outlined) per image. */
  sentencesPerImage?: number;
}

/** Stuff gets a fixed tint per class so the same class looks the same in every tile. */
const STUFF_TINT: Record<string, Rgb> = {
  sky: [120, 200, 255],
  grass: [60, 230, 60],
  water: [20, 60, 255],
  sand: [255, 220, 120],
  wall: [230, 80, 40],
  gravel: [150, 150, 150],
};

/** Index of a mask pixel roughly in the middle of the region, to hang a label on. */
function middlePixel(mask: Uint8Array, width: number): [number, number] {
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i]!;
  let k = Math.floor(n / 2);
  for (let i = 0; i < mask.length; i++) {
    if (mask[i] && k-- === 0) return [Math.max(0, (i % width) - 12), Math.floor(i / width)];
  }
  return [0, 0];
}

/**
 * A contact sheet of the first images of a split. Each tile pairs the annotations (stuff tinted
 * by class, things outlined with their words and box) with the grounding view (a few sentences,
 * each referent outlined in its own colour and tagged with its number); the sentences are the caption.
 */
export async function renderDatasetPreview(dir: string, options: PreviewOptions = {}): Promise<RgbImage> {
  const instancesPath = join(dir, DATASET_FILES.instances);
  const groundingPath = join(dir, DATASET_FILES.grounding);
  const instances = readJsonFile(instancesPath) as InstancesFile;
  const grounding = readJsonFile(groundingPath) as GroundingFile;
  for (const [path, file, keys] of [
    [instancesPath, instances, ['images', 'annotations']],
    [groundingPath, grounding, ['annotations']],
  ] as const) {
    for (const key of keys) {
      if (!Array.isArray((file as unknown as Record<string, unknown>)?.[key]))
        throw new Error(`${path}: "${key}" must be a list (run ape data check ${dir})`);
    }
  }
  const images: CocoImage[] = [...instances.images].sort((a, b) => a.id - b.id).slice(0, options.images ?? 8);
  if (images.length === 0) throw new Error(`${dir}: no images to show`);
  const perImage = options.sentencesPerImage ?? 3;
  const tiles: RgbImage[] = [];
  const captions: string[][] = [];
  for (const img of images) {
    const picture = await readImage(join(dir, DATASET_FILES.images, String(img.file_name))).catch((error: Error) => {
      throw new Error(`${instancesPath}, image id ${img.id}: ${error.message}`);
    });
    const mask = (seg: { size: [number, number]; counts: string }, path: string, id: number) => {
      try {
        return decodeRle(decompressRle(seg));
      } catch (error) {
        throw new Error(`${path}, annotation id ${id} (image id ${img.id}): segmentation: ${(error as Error).message}`);
      }
    };
    const anns = instances.annotations.filter((a) => a.image_id === img.id);
    const overlay: OverlayInstance[] = [];
    for (const a of anns) {
      const cat = categoryById(a.category_id);
      const m = mask(a.segmentation, instancesPath, a.id);
      if (cat?.isthing) {
        const words = a.attributes ? `${a.attributes.size} ${a.attributes.color} ${cat.name}` : cat.name;
        overlay.push({ mask: m, box: a.bbox, label: words, color: distinctColor(overlay.length) });
      } else {
        overlay.push({
          mask: m,
          label: cat?.name ?? String(a.category_id),
          labelAt: middlePixel(m, img.width),
          color: STUFF_TINT[cat?.name ?? ''] ?? [128, 128, 128],
        });
      }
    }
    // Stuff first so that thing masks, boxes and labels are drawn over it.
    overlay.sort((p, q) => Number(p.box !== undefined) - Number(q.box !== undefined));
    const annotated = drawOverlays(picture, overlay, { maskAlpha: 0.35 });

    const refs = grounding.annotations.filter((a) => a.image_id === img.id);
    const chosen = pickSentences(refs, perImage);
    const referring = drawOverlays(
      picture,
      chosen.map((c, k) => ({ box: c.ann.bbox, label: String(k + 1), color: distinctColor(k + 3) })),
      { boxThickness: 2 },
    );
    chosen.forEach((c, k) =>
      drawMaskContour(referring, mask(c.ann.segmentation, groundingPath, c.ann.id), distinctColor(k + 3)),
    );

    const tile = createRgbImage(img.width * 2 + 4, img.height, [32, 32, 32]);
    blit(tile, annotated, 0, 0);
    blit(tile, referring, img.width + 4, 0);
    tiles.push(tile);
    captions.push([
      `#${img.id}: ${anns.filter((a) => categoryById(a.category_id)?.isthing).length} things, ${refs.length} referents`,
      ...chosen.map((c, k) => `${k + 1} ${c.sentence}`),
    ]);
  }
  return contactSheet(tiles, { columns: options.columns ?? 2, padding: 6, captions, captionScale: 1 });
}

/** Up to `n` sentences on distinct objects, one kind after another so every kind shows up. */
function pickSentences(
  refs: GroundingFile['annotations'],
  n: number,
): { ann: GroundingFile['annotations'][number]; sentence: string }[] {
  const out: { ann: GroundingFile['annotations'][number]; sentence: string }[] = [];
  const used = new Set<number>();
  for (const kind of ['spatial', 'ordinal', 'stuff', 'attribute']) {
    for (const ann of refs) {
      if (out.length >= n) return out;
      if (used.has(ann.id)) continue;
      const s = ann.sentences.find((x) => x.kind === kind);
      if (s === undefined) continue;
      out.push({ ann, sentence: s.raw });
      used.add(ann.id);
      break;
    }
  }
  return out;
}
