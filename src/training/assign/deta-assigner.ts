import { convertBoxAt } from '../../structures/boxes.js';
import { pairwiseIouFlat } from '../../structures/box-iou.js';
import type { Rng } from '../../util/random.js';
import type { MatchIndices } from './hungarian-matcher.js';

/**
 * DETA's one-to-many assignment by IoU between target boxes and fixed proposal boxes (the query
 * reference boxes for the decoder, the per-pixel anchors for the encoder): an IoU matcher with
 * low-quality matches, random subsampling of positives, and at most k positives per target.
 */
export interface IouAssignOptions {
  /** IoU thresholds splitting [0, 1] into intervals, and the label of each interval (0 bg, -1 ignore, 1 fg). */
  thresholds: number[];
  labels: number[];
  /** Also mark, for each target, the proposals of highest IoU with it (if that IoU > 0). */
  allowLowQuality: boolean;
  /** Sampled proposals per image and the largest share of positives among them. */
  batchSizePerImage: number;
  positiveFraction: number;
  /** Most positives one target keeps (its highest-IoU proposals). */
  topK: number;
}

/** Decoder queries (DETA Stage2Assigner): IoU >= 0.6 positive, a quarter of the queries at most. */
export function decoderAssignOptions(numQueries: number): IouAssignOptions {
  return {
    thresholds: [0.6],
    labels: [0, 1],
    allowLowQuality: true,
    batchSizePerImage: numQueries,
    positiveFraction: 0.25,
    topK: 4,
  };
}

/** Encoder proposals (DETA Stage1Assigner): < 0.3 background, >= 0.7 foreground, between ignored. */
export function encoderAssignOptions(): IouAssignOptions {
  return {
    thresholds: [0.3, 0.7],
    labels: [0, -1, 1],
    allowLowQuality: true,
    batchSizePerImage: 256,
    positiveFraction: 0.5,
    topK: 4,
  };
}

/**
 * `proposals` [N, 4] and `targets` [G, 4] are normalised cxcywh. Returns positive pairs sorted by
 * proposal index.
 */
export function iouAssign(
  proposals: ArrayLike<number>,
  targets: ArrayLike<number>,
  options: IouAssignOptions,
  rng: Rng,
): MatchIndices {
  const n = proposals.length / 4;
  const g = targets.length / 4;
  if (g === 0 || n === 0) return { queries: [], targets: [] };
  if (options.labels.length !== options.thresholds.length + 1)
    throw new Error('iouAssign: need one label more than thresholds');
  const iou = pairwiseIouFlat(xyxyOf(targets, g), xyxyOf(proposals, n)); // [G, N]

  const matched = new Int32Array(n);
  const label = new Int8Array(n);
  for (let j = 0; j < n; j++) {
    let best = -1;
    let bestIou = -Infinity;
    for (let i = 0; i < g; i++) {
      if (iou[i * n + j]! > bestIou) {
        bestIou = iou[i * n + j]!;
        best = i;
      }
    }
    matched[j] = best;
    let interval = 0;
    while (interval < options.thresholds.length && bestIou >= options.thresholds[interval]!) interval++;
    label[j] = options.labels[interval]!;
  }
  if (options.allowLowQuality) {
    for (let i = 0; i < g; i++) {
      let top = 0;
      for (let j = 0; j < n; j++) top = Math.max(top, iou[i * n + j]!);
      if (top <= 0) continue;
      for (let j = 0; j < n; j++) if (iou[i * n + j] === top) label[j] = 1;
    }
  }

  const positives: number[] = [];
  for (let j = 0; j < n; j++) if (label[j] === 1) positives.push(j);
  const maxPositives = Math.floor(options.batchSizePerImage * options.positiveFraction);
  const kept = positives.length > maxPositives ? rng.shuffle(positives).slice(0, maxPositives) : positives;

  // Keep, per target, as many of its highest-IoU proposals as it won positives (at most topK).
  const counts = new Map<number, number>();
  for (const j of kept) counts.set(matched[j]!, (counts.get(matched[j]!) ?? 0) + 1);
  const pairs: Array<[number, number]> = [];
  for (const [i, count] of [...counts].sort((a, b) => a[0] - b[0])) {
    const order = Array.from({ length: n }, (_, j) => j).sort((a, b) => iou[i * n + b]! - iou[i * n + a]! || a - b);
    for (const j of order.slice(0, Math.min(count, options.topK))) pairs.push([j, i]);
  }
  pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return { queries: pairs.map((p) => p[0]), targets: pairs.map((p) => p[1]) };
}

function xyxyOf(cxcywh: ArrayLike<number>, count: number): Float64Array {
  const out = new Float64Array(count * 4);
  for (let i = 0; i < count; i++) convertBoxAt(cxcywh, i, 'cxcywh', 'xyxy', out);
  return out;
}
