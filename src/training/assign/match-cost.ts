import { convertBoxAt, type Box } from '../../structures/boxes.js';
import { boxGiou } from '../../structures/box-iou.js';

/** Weights of the one-to-one matching cost (DETR/detrex: class 2, L1 5, GIoU 2). */
export interface MatchCostWeights {
  cls: number;
  l1: number;
  giou: number;
  focalAlpha?: number;
  focalGamma?: number;
}

export const DEFAULT_MATCH_COST: MatchCostWeights = { cls: 2, l1: 5, giou: 2, focalAlpha: 0.25, focalGamma: 2 };

/** One image's detached predictions for matching. */
export interface MatchPredictions {
  /** [Q, P] class logits (omit when the class term is off). */
  logits?: ArrayLike<number>;
  numPrompts: number;
  /** [Q, 4] normalised cxcywh. */
  boxes: ArrayLike<number>;
  numQueries: number;
}

/** One image's targets: prompt index per object (any value when the class term is off), boxes [G, 4] cxcywh. */
export interface MatchTargets {
  labels: ArrayLike<number>;
  boxes: ArrayLike<number>;
}

/**
 * The matching cost matrix [G, Q] (targets are rows): the focal-style class cost of detrex
 * (alpha (1-p)^gamma (-log p) - (1-alpha) p^gamma (-log(1-p)) at the target's prompt), L1 between
 * cxcywh boxes and -GIoU between their xyxy forms.
 */
export function matchCostMatrix(
  pred: MatchPredictions,
  targets: MatchTargets,
  weights: MatchCostWeights,
): Float64Array {
  const q = pred.numQueries;
  const g = targets.labels.length;
  const alpha = weights.focalAlpha ?? 0.25;
  const gamma = weights.focalGamma ?? 2;
  const logits = pred.logits;
  const useClass = weights.cls !== 0 && logits !== undefined;
  const cost = new Float64Array(g * q);
  const predXyxy = new Float64Array(q * 4);
  for (let j = 0; j < q; j++) convertBoxAt(pred.boxes, j, 'cxcywh', 'xyxy', predXyxy);
  const tXyxy = new Float64Array(4);
  const pBox: Box = [0, 0, 0, 0];
  const tBox: Box = [0, 0, 0, 0];
  for (let i = 0; i < g; i++) {
    convertBoxAt(targets.boxes, i, 'cxcywh', 'xyxy', tXyxy, 0);
    for (let k = 0; k < 4; k++) tBox[k] = tXyxy[k]!;
    const label = targets.labels[i]!;
    if (useClass && (label < 0 || label >= pred.numPrompts))
      throw new Error(`matchCostMatrix: target ${i} has prompt ${label}, there are ${pred.numPrompts}`);
    for (let j = 0; j < q; j++) {
      let c = 0;
      if (useClass) {
        const p = sigmoid(logits[j * pred.numPrompts + label]!);
        const pos = alpha * (1 - p) ** gamma * -Math.log(p + 1e-8);
        const neg = (1 - alpha) * p ** gamma * -Math.log(1 - p + 1e-8);
        c += weights.cls * (pos - neg);
      }
      let l1 = 0;
      for (let k = 0; k < 4; k++) l1 += Math.abs(pred.boxes[j * 4 + k]! - targets.boxes[i * 4 + k]!);
      for (let k = 0; k < 4; k++) pBox[k] = predXyxy[j * 4 + k]!;
      c += weights.l1 * l1 - weights.giou * boxGiou(pBox, tBox);
      cost[i * q + j] = c;
    }
  }
  return cost;
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}
