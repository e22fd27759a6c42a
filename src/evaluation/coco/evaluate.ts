import { pairwiseIouXywh } from '../../structures/box-iou.js';
import { rleIouWithBoxes } from '../../structures/rle-iou.js';
import type { Rle } from '../../structures/rle.js';
import { accumulate } from './accumulate.js';
import { evaluateImage, type ImageEvaluation } from './evaluate-image.js';
import { defaultCocoParams, type CocoEvalParams } from './params.js';
import { prepareInstances, type DtInstance, type GtInstance } from './prepare.js';
import { pairwiseSum, summarize } from './summarize.js';
import type { CocoDataset, CocoIouType, CocoResult } from './types.js';

export interface CocoEvaluateOptions {
  /** Evaluate only these images (default: every image of the ground truth). */
  imageIds?: readonly number[];
  /** Evaluate only these categories (default: every category of the ground truth). */
  categoryIds?: readonly number[];
}

export interface CocoCategoryAp {
  categoryId: number;
  name: string;
  /** AP@[.50:.95], all areas, 100 detections; NaN when the category has no counted ground truth. */
  ap: number;
}

export interface CocoEvaluation {
  type: CocoIouType;
  /** AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl (-1 where undefined). */
  stats: number[];
  /** The standard 12-line summary text. */
  summary: string;
  params: CocoEvalParams;
  /** [T, R, K, A, M] row-major, -1 where a category has no counted ground truth. */
  precision: Float64Array;
  /** [T, K, A, M] row-major. */
  recall: Float64Array;
  perCategory: CocoCategoryAp[];
}

function sortedUnique(ids: Iterable<number>): number[] {
  return [...new Set(ids)].sort((a, b) => a - b);
}

/** Detections best score first (stable), cut to the largest detection limit. */
function rankDetections(dts: readonly DtInstance[], maxDet: number): DtInstance[] {
  return [...dts].sort((a, b) => b.score - a.score).slice(0, maxDet);
}

function computeIous(type: CocoIouType, gts: readonly GtInstance[], dts: readonly DtInstance[]): number[][] {
  if (gts.length === 0 || dts.length === 0) return [];
  const crowd = gts.map((g) => g.crowd);
  if (type === 'bbox')
    return pairwiseIouXywh(
      dts.map((d) => d.box),
      gts.map((g) => g.box),
      crowd,
    );
  return rleIouWithBoxes(
    dts.map((d) => d.rle as Rle),
    dts.map((d) => d.box),
    gts.map((g) => g.rle as Rle),
    gts.map((g) => g.box),
    crowd,
  );
}

/**
 * COCO detection evaluation, numerically identical to pycocotools COCOeval with iouType 'bbox' or
 * 'segm' and default parameters: per image and category greedy matching at IoU 0.50:0.05:0.95 with
 * crowd regions ignored, pooled into 101-point interpolated precision per area range and detection
 * limit, and summarised into the standard twelve numbers. Results must refer to images of the
 * ground truth; results of categories outside the evaluated set are skipped, as in the reference.
 * Use parseCocoGroundTruth / parseCocoResults first for untrusted files.
 */
export function evaluateCoco(
  gt: CocoDataset,
  results: readonly CocoResult[],
  type: CocoIouType,
  options: CocoEvaluateOptions = {},
): CocoEvaluation {
  if (type !== 'bbox' && type !== 'segm')
    throw new Error(`COCO evaluation: type must be 'bbox' or 'segm', got ${JSON.stringify(type)}`);
  const imgIds = sortedUnique(options.imageIds ?? gt.images.map((im) => im.id));
  const catIds = sortedUnique(options.categoryIds ?? gt.categories.map((c) => c.id));
  const params = defaultCocoParams(imgIds, catIds);
  const { gts, dts } = prepareInstances(gt, results, type, imgIds, catIds);

  const I = imgIds.length;
  const K = catIds.length;
  const A = params.areaRanges.length;
  const maxDet = params.maxDets[params.maxDets.length - 1]!;
  const evals: (ImageEvaluation | null)[] = new Array(K * A * I).fill(null);
  // Category-major like the reference's evalImgs, which keeps each category's results together in memory.
  for (let k = 0; k < K; k++) {
    for (let i = 0; i < I; i++) {
      const key = i * K + k;
      const g = gts.get(key) ?? [];
      const d = rankDetections(dts.get(key) ?? [], maxDet);
      if (g.length === 0 && d.length === 0) continue;
      const ious = computeIous(type, g, d);
      const scores = Float64Array.from(d, (x) => x.score);
      for (let a = 0; a < A; a++)
        evals[(k * A + a) * I + i] = evaluateImage(g, d, ious, scores, params.areaRanges[a]!, params.iouThrs);
    }
  }

  const acc = accumulate(evals, params);
  const { stats, lines } = summarize(acc, params);
  const names = new Map(gt.categories.map((c) => [c.id, c.name]));
  const { T, R, M } = acc.dims;
  const perCategory = catIds.map((categoryId, k): CocoCategoryAp => {
    const values: number[] = [];
    for (let t = 0; t < T; t++) {
      for (let r = 0; r < R; r++) {
        const v = acc.precision[(((t * R + r) * K + k) * A + 0) * M + (M - 1)]!;
        if (v > -1) values.push(v);
      }
    }
    return {
      categoryId,
      name: names.get(categoryId) ?? String(categoryId),
      ap: values.length ? pairwiseSum(values) / values.length : NaN,
    };
  });
  return { type, stats, summary: lines.join('\n'), params, precision: acc.precision, recall: acc.recall, perCategory };
}
