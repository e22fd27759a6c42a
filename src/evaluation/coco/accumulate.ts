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
    for (let a = 0; a < A; a++) {
      const E: ImageEvaluation[] = [];
      for (let i = 0; i < I; i++) {
        const e = evals[(k * A + a) * I + i];
        if (e) E.push(e);
      }
      if (E.length === 0) continue;
      let positives = 0;
      for (const e of E) positives += e.positives;
      for (let m = 0; m < M; m++) {
        const maxDet = params.maxDets[m];
        // Every image's first maxDet detections, as (image, detection) pairs ranked by score.
        const owner: number[] = [];
        const index: number[] = [];
        const scores: number[] = [];
        E.forEach((e, n) => {
          const d = Math.min(e.scores.length, maxDet);
          for (let j = 0; j < d; j++) {
            owner.push(n);
            index.push(j);
            scores.push(e.scores[j]);
          }
        });
        if (positives === 0) continue;
        const nd = scores.length;
        const rank = [...Array(nd).keys()].sort((x, y) => scores[y] - scores[x]);
        const rc = new Float64Array(nd);
        const pr = new Float64Array(nd);
        for (let t = 0; t < T; t++) {
          let tp = 0;
          let fp = 0;
          for (let r = 0; r < nd; r++) {
            const e = E[owner[rank[r]]];
            const at = t * e.scores.length + index[rank[r]];
            if (!e.ignored[at]) {
              if (e.matched[at]) tp++;
              else fp++;
            }
            rc[r] = tp / positives;
            pr[r] = tp / (fp + tp + EPS);
          }
          recall[((t * K + k) * A + a) * M + m] = nd ? rc[nd - 1] : 0;
          for (let r = nd - 1; r > 0; r--) if (pr[r] > pr[r - 1]) pr[r - 1] = pr[r];
          // Precision at the first rank reaching each recall point (searchsorted 'left'); 0 past the curve's end.
          let r = 0;
          for (let q = 0; q < R; q++) {
            while (r < nd && rc[r] < params.recThrs[q]) r++;
            precision[(((t * R + q) * K + k) * A + a) * M + m] = r < nd ? pr[r] : 0;
          }
        }
      }
    }
  }
  return { precision, recall, dims: { T, R, K, A, M } };
}
