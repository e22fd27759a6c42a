/**
 * DINO's contrastive denoising queries (CDN), training only: each group holds every target of
 * the image twice, as a positive query (its box moved by less than half its size per edge, which
 * must be denoised back to the target: class, L1 + GIoU, mask) and a negative one (moved by one
 * to two half sizes, which must answer "no object"). Labels are flipped to another of the image's
 * prompts with probability labelNoise / 2, and the positive must still name the true one. The
 * attention mask keeps the proposal queries from seeing any denoising query (so their outputs,
 * and inference, are what they would be without) and each group from seeing the others.
 */
import type { ImageTargets } from '../data/batch.js';
import type { DenoisingInput } from '../modeling/denoising-queries.js';
import type { Rng } from '../util/random.js';
import type { MatchIndices } from './assign/hungarian-matcher.js';

export interface DenoisingConfig {
  /** Groups of positive and negative copies of the targets (0 = off). */
  groups: number;
  /** Share of the queries whose label is redrawn is half this (DINO's label_noise_ratio 0.5). */
  labelNoise: number;
  /** Edge offsets in half box sizes: positives up to this, negatives from this to twice it (DINO's box_noise_scale 1). */
  boxNoise: number;
  /** Fewer groups when groups x 2 x (most targets of an image) would exceed this (at least one group). */
  maxQueries: number;
}

/** The denoising queries of a batch, with which target each positive query answers for. */
export interface DenoisingBatch {
  input: DenoisingInput;
  groups: number;
  /** The most targets of one image in the batch: each group spans 2 x this queries. */
  span: number;
  /** Per image: positive queries and their targets (negatives are in no pair: "no object"). */
  matches: MatchIndices[];
}

/**
 * Noised copies of `targets` for a decoder with `queries` proposal queries, or null when the batch
 * has no target. Queries of an image with fewer targets than `span` are padding: a zero box, no
 * label, hidden from every query, trained by nothing. `numPrompts` are the batch's prompt columns
 * (labels are redrawn among the image's own: weight > 0).
 */
export function denoisingBatch(
  targets: readonly ImageTargets[],
  numPrompts: number,
  queries: number,
  config: DenoisingConfig,
  rng: Rng,
): DenoisingBatch | null {
  const span = Math.max(0, ...targets.map((t) => t.labels.length));
  if (span === 0 || config.groups <= 0) return null;
  const groups = Math.max(1, Math.min(config.groups, Math.floor(config.maxQueries / (2 * span))));
  const d = groups * 2 * span;
  const b = targets.length;
  const boxes = new Float32Array(b * d * 4);
  const labels = new Int32Array(b * d).fill(-1);
  const matches: MatchIndices[] = [];
  targets.forEach((t, i) => {
    const n = t.labels.length;
    const own: number[] = [];
    for (let c = 0; c < numPrompts; c++) if (!t.promptWeights || (t.promptWeights[c] ?? 1) > 0) own.push(c);
    const match: MatchIndices = { queries: [], targets: [] };
    for (let g = 0; g < groups; g++) {
      for (let negative = 0; negative < 2; negative++) {
        for (let j = 0; j < n; j++) {
          const q = g * 2 * span + negative * span + j;
          const row = i * d + q;
          const label = t.labels[j]!;
          labels[row] =
            label >= 0 && own.length > 0 && rng.next() < config.labelNoise / 2
              ? own[rng.int(0, own.length - 1)]!
              : label;
          boxes.set(noisedBox(t.boxes.subarray(j * 4, j * 4 + 4), negative === 1, config.boxNoise, rng), row * 4);
          if (!negative) {
            match.queries.push(q);
            match.targets.push(j);
          }
        }
      }
    }
    matches.push(match);
  });
  const counts = targets.map((t) => t.labels.length);
  return {
    input: { count: d, boxes, labels, blocked: denoisingAttentionMask(groups, span, counts, queries) },
    groups,
    span,
    matches,
  };
}

/**
 * A box (cxcywh) with each edge moved by u x half the box's size x `scale` in a random direction,
 * u uniform in [0, 1) for a positive and in [1, 2) for a negative; edges clamped to [0, 1], sizes
 * to at least 0 (edges that crossed), as DINO's prepare_for_cdn.
 */
export function noisedBox(box: ArrayLike<number>, negative: boolean, scale: number, rng: Rng): Float32Array {
  const [cx, cy, w, h] = [box[0]!, box[1]!, box[2]!, box[3]!];
  const edges = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2];
  const half = [w / 2, h / 2, w / 2, h / 2];
  const moved = edges.map((e, k) => {
    const sign = rng.next() < 0.5 ? -1 : 1;
    const u = rng.next() + (negative ? 1 : 0);
    return Math.min(1, Math.max(0, e + sign * u * half[k]! * scale));
  });
  const [x0, y0, x1, y1] = moved as [number, number, number, number];
  return Float32Array.of((x0 + x1) / 2, (y0 + y1) / 2, Math.max(0, x1 - x0), Math.max(0, y1 - y0));
}

/**
 * [B, D + Q, D + Q], 1 where a query (row) may not see another (column); D = groups x 2 x span
 * denoising queries come first. Proposal queries see only proposal queries; a denoising query
 * sees its own group and the proposal queries; padding queries (image i has counts[i] targets,
 * so the last span - counts[i] positives and negatives of each group pad) are seen by none.
 */
export function denoisingAttentionMask(
  groups: number,
  span: number,
  counts: readonly number[],
  queries: number,
): Uint8Array {
  const d = groups * 2 * span;
  const t = d + queries;
  const out = new Uint8Array(counts.length * t * t);
  counts.forEach((n, i) => {
    const padding = (col: number) => col % span >= n;
    for (let row = 0; row < t; row++) {
      const base = (i * t + row) * t;
      for (let col = 0; col < d; col++) {
        const hidden = row >= d || Math.floor(row / (2 * span)) !== Math.floor(col / (2 * span)) || padding(col);
        if (hidden) out[base + col] = 1;
      }
    }
  });
  return out;
}
