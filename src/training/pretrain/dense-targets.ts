import { downsampleMaskArea } from '../losses/mask-targets.js';
import type { ImageTargets } from '../../data/batch.js';

/**
 * Soft per-cell class targets of one image on a grid: each cell's share of every prompt's masks
 * (area-averaged from the canvas), normalised over the cell's covered part, and the covered
 * fraction as the cell's weight (0 = unlabelled: padding, pixels no mask covers).
 */
export function cellClassTargets(
  targets: ImageTargets,
  canvas: number,
  h: number,
  w: number,
  prompts: number,
): { probs: Float32Array; weights: Float32Array } {
  const probs = new Float32Array(h * w * prompts);
  const weights = new Float32Array(h * w);
  if (!targets.masks) return { probs, weights };
  targets.masks.forEach((mask, k) => {
    const label = targets.labels[k]!;
    if (label < 0) return;
    const share = downsampleMaskArea(mask, canvas, canvas, h, w);
    for (let i = 0; i < h * w; i++) probs[i * prompts + label]! += share[i]!;
  });
  for (let i = 0; i < h * w; i++) {
    let sum = 0;
    for (let c = 0; c < prompts; c++) sum += probs[i * prompts + c]!;
    // Overlapping masks can cover a cell more than once; the weight is the covered share, at most 1.
    weights[i] = Math.min(sum, 1);
    if (sum > 0) for (let c = 0; c < prompts; c++) probs[i * prompts + c]! /= sum;
  }
  return { probs, weights };
}

/**
 * Object pooling over a batch's grid cells: row k holds object k's mask share per cell (its
 * area-averaged mask, normalised to sum 1), over the [B * h * w] cells of the batch; objects
 * with a prompt only, and only those that cover some cell. `images` and `objects` say which
 * image and which of its targets each row is.
 */
export function objectPooling(
  all: readonly ImageTargets[],
  canvas: number,
  h: number,
  w: number,
): { weights: Float32Array; labels: Int32Array; count: number; images: Int32Array; objects: Int32Array } {
  const rows: Float32Array[] = [];
  const labels: number[] = [];
  const images: number[] = [];
  const objects: number[] = [];
  const cells = h * w;
  all.forEach((targets, b) => {
    targets.masks?.forEach((mask, k) => {
      const label = targets.labels[k]!;
      if (label < 0) return;
      const share = downsampleMaskArea(mask, canvas, canvas, h, w);
      let sum = 0;
      for (const v of share) sum += v;
      if (sum <= 0) return;
      const row = new Float32Array(all.length * cells);
      for (let i = 0; i < cells; i++) row[b * cells + i] = share[i]! / sum;
      rows.push(row);
      labels.push(label);
      images.push(b);
      objects.push(k);
    });
  });
  const weights = new Float32Array(rows.length * all.length * cells);
  rows.forEach((r, i) => weights.set(r, i * r.length));
  return {
    weights,
    labels: Int32Array.from(labels),
    count: rows.length,
    images: Int32Array.from(images),
    objects: Int32Array.from(objects),
  };
}

/**
 * Which phrases each pooled object of a sentence batch is named against (1 = a candidate), [rows
 * x prompts]: the phrases of its own image (another image's phrase may be true of it as well),
 * less the other phrases that refer to the same object (same box), which are not wrong.
 */
export function phraseCandidates(
  all: readonly ImageTargets[],
  pool: { labels: Int32Array; images: Int32Array; objects: Int32Array; count: number },
  prompts: number,
): Uint8Array {
  const out = new Uint8Array(pool.count * prompts);
  for (let r = 0; r < pool.count; r++) {
    const t = all[pool.images[r]!]!;
    const k = pool.objects[r]!;
    const row = out.subarray(r * prompts, (r + 1) * prompts);
    for (let c = 0; c < prompts; c++) row[c] = !t.promptWeights || (t.promptWeights[c] ?? 0) > 0 ? 1 : 0;
    for (let j = 0; j < t.labels.length; j++) {
      if (j === k || t.labels[j] === pool.labels[r]) continue;
      let same = true;
      for (let e = 0; e < 4; e++) same &&= t.boxes[j * 4 + e] === t.boxes[k * 4 + e];
      if (same && t.labels[j]! >= 0) row[t.labels[j]!] = 0;
    }
    row[pool.labels[r]!] = 1;
  }
  return out;
}
