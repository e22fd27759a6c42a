import { pairwiseIouXywh } from './box-iou.js';
import type { BoxLike } from './boxes.js';
import { rleArea, rleToBbox, type Rle } from './rle.js';
import { walkRunPairs } from './rle-runs.js';

/**
 * Mask IoU of every detection against every ground truth, result[d][g], exactly as pycocotools
 * (maskApi.c rleIou): where iscrowd[g] is set the intersection is divided by the detection's area
 * instead of the union. Pairs of different sizes get -1, as in the reference.
 */
export function rleIou(dt: readonly Rle[], gt: readonly Rle[], iscrowd: readonly boolean[]): number[][] {
  return rleIouWithBoxes(dt, dt.map(rleToBbox), gt, gt.map(rleToBbox), iscrowd);
}

/** rleIou with the masks' rleToBbox boxes already computed (the evaluator reuses them). */
export function rleIouWithBoxes(
  dt: readonly Rle[],
  dtBoxes: readonly BoxLike[],
  gt: readonly Rle[],
  gtBoxes: readonly BoxLike[],
  iscrowd: readonly boolean[],
): number[][] {
  // Boxes that do not overlap bound masks that do not overlap: only overlapping pairs walk their runs.
  const out = pairwiseIouXywh(dtBoxes, gtBoxes, iscrowd);
  for (let d = 0; d < dt.length; d++) {
    for (let g = 0; g < gt.length; g++) {
      if (!(out[d]![g]! > 0)) continue;
      const a = dt[d]!;
      const b = gt[g]!;
      if (a.size[0] !== b.size[0] || a.size[1] !== b.size[1]) {
        out[d]![g] = -1;
        continue;
      }
      out[d]![g] = pairIou(a.counts, b.counts, iscrowd[g] === true, a);
    }
  }
  return out;
}

function pairIou(a: readonly number[], b: readonly number[], crowd: boolean, dt: Rle): number {
  let inter = 0;
  let union = 0;
  walkRunPairs(a, b, (c, va, vb) => {
    if (va || vb) {
      union += c;
      if (va && vb) inter += c;
    }
  });
  if (inter === 0) union = 1;
  else if (crowd) union = rleArea(dt);
  return inter / union;
}
