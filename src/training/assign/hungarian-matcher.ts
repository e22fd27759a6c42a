import { linearSumAssignment } from './hungarian.js';
import { matchCostMatrix, type MatchCostWeights, type MatchPredictions, type MatchTargets } from './match-cost.js';

/** Matched (query, target) pairs of one image. */
export interface MatchIndices {
  queries: number[];
  targets: number[];
}

/** DETR's one-to-one assignment: each target gets the distinct query of least total cost. */
export function hungarianMatch(pred: MatchPredictions, targets: MatchTargets, weights: MatchCostWeights): MatchIndices {
  const g = targets.labels.length;
  if (g === 0 || pred.numQueries === 0) return { queries: [], targets: [] };
  const cost = matchCostMatrix(pred, targets, weights);
  const a = linearSumAssignment(cost, g, pred.numQueries);
  return { queries: a.cols, targets: a.rows };
}
