import type { DtInstance, GtInstance } from './prepare.js';

/** Matching outcome of one image, one category and one area range (pycocotools evaluateImg). */
export interface ImageEvaluation {
  /** Scores of the kept detections, highest first. */
  scores: Float64Array;
  /** [D, T]: 1 where detection d matched a ground truth at IoU threshold t. */
  matched: Uint8Array;
  /** [D, T]: 1 where the detection is ignored (matched an ignored object, or unmatched outside the area range). */
  ignored: Uint8Array;
  /** Ground-truth objects that count (not crowd, inside the area range). */
  positives: number;
}

/**
 * Greedy matching, threshold by threshold: each detection, best score first, takes the
 * highest-IoU ground truth still free (crowd regions stay free and can absorb many detections),
 * preferring counted objects over ignored ones. Follows pycocotools evaluateImg step by step,
 * including its quirk of recording a match to a ground truth with id 0 as no match.
 *
 * dts are sorted by score and cut to the largest maxDets; ious[d][g] and scores[d] are in the same order.
 */
export function evaluateImage(
  gts: readonly GtInstance[],
  dts: readonly DtInstance[],
  ious: readonly (readonly number[])[],
  scores: Float64Array,
  areaRange: readonly [number, number],
  iouThrs: readonly number[],
): ImageEvaluation | null {
  if (gts.length === 0 && dts.length === 0) return null;
  const [lo, hi] = areaRange;
  const outside = (area: number) => area < lo || area > hi;
  const G = gts.length;
  const D = dts.length;
  const T = iouThrs.length;

  // Counted objects first, ignored ones last (a stable order, as numpy's mergesort).
  const gtIgnoreRaw = gts.map((g) => g.crowd || outside(g.area));
  const order = [...Array(G).keys()].sort((a, b) => Number(gtIgnoreRaw[a]) - Number(gtIgnoreRaw[b]));
  const gtIgnore = order.map((g) => gtIgnoreRaw[g]);
  const crowd = order.map((g) => gts[g]!.crowd);
  const gtIds = order.map((g) => gts[g]!.id);

  const matched = new Uint8Array(T * D);
  const ignored = new Uint8Array(T * D);
  if (G > 0 && D > 0) {
    const gtTaken = new Uint8Array(G);
    for (let t = 0; t < T; t++) {
      gtTaken.fill(0);
      for (let d = 0; d < D; d++) {
        const row = ious[d]!;
        let best = Math.min(iouThrs[t]!, 1 - 1e-10);
        let m = -1;
        for (let j = 0; j < G; j++) {
          if (gtTaken[j] && !crowd[j]) continue;
          // Once matched to a counted object, ignored ones (sorted last) cannot take over.
          if (m > -1 && !gtIgnore[m] && gtIgnore[j]) break;
          const iou = row[order[j]!]!;
          if (iou < best) continue;
          best = iou;
          m = j;
        }
        if (m === -1) continue;
        ignored[d * T + t] = gtIgnore[m] ? 1 : 0;
        matched[d * T + t] = gtIds[m] !== 0 ? 1 : 0;
        gtTaken[m] = 1;
      }
    }
  }
  for (let d = 0; d < D; d++) {
    if (!outside(dts[d]!.area)) continue;
    for (let t = 0; t < T; t++) if (!matched[d * T + t]) ignored[d * T + t] = 1;
  }
  let positives = 0;
  for (const ig of gtIgnore) if (!ig) positives++;
  return { scores, matched, ignored, positives };
}
