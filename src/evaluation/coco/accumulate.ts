import type { ImageEvaluation } from './evaluate-image.js';
import type { CocoEvalParams } from './params.js';

/** numpy's np.spacing(1): keeps precision finite where no detection counts. */
const EPS = 2.220446049250313e-16;

export interface Accumulated {
  /** [T, R, K, A, M] interpolated precision; -1 where a category has no counted ground truth. */
  precision: Float64Array;
  /** [T, K, A, M] final recall; -1 likewise. */
  recall: Float64Array;
  dims: { T: number; R: number; K: number; A: number; M: number };
}

/**
 * Running recall and precision down the ranked detections, for all thresholds at once: rc and pr
 * are [T, nd]. outcome holds each detection's T outcomes together (0 false positive, 1 true
 * positive, 2 ignored), packed per category and area range so this hot loop stays in cache.
 */
function cumulate(
  rankedAt: Int32Array,
  outcome: Uint8Array,
  positives: number,
  T: number,
  rc: Float64Array,
  pr: Float64Array,
): void {
  const nd = rankedAt.length;
  const tp = new Float64Array(T);
  const fp = new Float64Array(T);
  for (let r = 0; r < nd; r++) {
    const base = rankedAt[r]!;
    for (let t = 0; t < T; t++) {
      const o = outcome[base + t];
      if (o === 1) tp[t]!++;
      else if (o === 0) fp[t]!++;
      rc[t * nd + r] = tp[t]! / positives;
      pr[t * nd + r] = tp[t]! / (fp[t]! + tp[t]! + EPS);
    }
  }
}

/**
 * Pools the per-image matches of each category, area range and detection limit into a
 * precision/recall curve (pycocotools accumulate): detections of all images ranked by score
 * (stable, so ties keep image order), precision made monotone from the right and read at the
 * 101 recall points.
 *
 * evals is indexed [(k * A + a) * I + i].
 */
export function accumulate(evals: readonly (ImageEvaluation | null)[], params: CocoEvalParams): Accumulated {
  const T = params.iouThrs.length;
  const R = params.recThrs.length;
  const K = params.catIds.length;
  const A = params.areaRanges.length;
  const M = params.maxDets.length;
  const I = params.imgIds.length;
  const precision = new Float64Array(T * R * K * A * M).fill(-1);
  const recall = new Float64Array(T * K * A * M).fill(-1);

  for (let k = 0; k < K; k++) {
    // An image's evaluation exists for every area range or for none, so the ranking by score
    // (which ignores area) is shared by all area ranges of a category.
    const present: number[] = [];
    for (let i = 0; i < I; i++) if (evals[k * A * I + i]) present.push(i);
    if (present.length === 0) continue;
    // Where each present image's detections start in the packed per-(category, area) outcomes.
    const start = new Int32Array(present.length + 1);
    present.forEach((i, n) => (start[n + 1] = start[n]! + evals[k * A * I + i]!.scores.length * T));
    const outcomes: (Uint8Array | null)[] = [];
    const positives: number[] = [];
    for (let a = 0; a < A; a++) {
      let p = 0;
      const packed = new Uint8Array(start[present.length]!);
      present.forEach((i, n) => {
        const e = evals[(k * A + a) * I + i]!;
        p += e.positives;
        const o = start[n]!;
        for (let j = 0; j < e.matched.length; j++) packed[o + j] = e.ignored[j] ? 2 : e.matched[j]!;
      });
      positives.push(p);
      outcomes.push(p > 0 ? packed : null);
    }
    for (let m = 0; m < M; m++) {
      const maxDet = params.maxDets[m]!;
      // Every image's first maxDet detections, ranked by score (stable: ties keep image order).
      const at: number[] = [];
      const scores: number[] = [];
      present.forEach((i, n) => {
        const e = evals[k * A * I + i]!;
        const d = Math.min(e.scores.length, maxDet);
        for (let j = 0; j < d; j++) {
          at.push(start[n]! + j * T);
          scores.push(e.scores[j]!);
        }
      });
      const nd = scores.length;
      const rankedAt = Int32Array.from(
        [...Array(nd).keys()].sort((x, y) => scores[y]! - scores[x]!),
        (r) => at[r]!,
      );
      const rc = new Float64Array(T * nd);
      const pr = new Float64Array(T * nd);
      for (let a = 0; a < A; a++) {
        const outcome = outcomes[a];
        if (!outcome) continue;
        cumulate(rankedAt, outcome, positives[a]!, T, rc, pr);
        for (let t = 0; t < T; t++) {
          const o = t * nd;
          recall[((t * K + k) * A + a) * M + m] = nd ? rc[o + nd - 1]! : 0;
          for (let r = nd - 1; r > 0; r--) if (pr[o + r]! > pr[o + r - 1]!) pr[o + r - 1] = pr[o + r]!;
          // Precision at the first rank reaching each recall point (searchsorted 'left'); 0 past the curve's end.
          let r = 0;
          for (let q = 0; q < R; q++) {
            while (r < nd && rc[o + r]! < params.recThrs[q]!) r++;
            precision[(((t * R + q) * K + k) * A + a) * M + m] = r < nd ? pr[o + r]! : 0;
          }
        }
      }
    }
  }
  return { precision, recall, dims: { T, R, K, A, M } };
}
