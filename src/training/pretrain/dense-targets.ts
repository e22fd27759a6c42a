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
 * with a prompt only, and only those that cover some cell.
 */
export function objectPooling(
  all: readonly ImageTargets[],
  canvas: number,
  h: number,
  w: number,
): { weights: Float32Array; labels: Int32Array; count: number } {
  const rows: Float32Array[] = [];
  const labels: number[] = [];
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
    });
  });
  const weights = new Float32Array(rows.length * all.length * cells);
  rows.forEach((r, i) => weights.set(r, i * r.length));
  return { weights, labels: Int32Array.from(labels), count: rows.length };
}
