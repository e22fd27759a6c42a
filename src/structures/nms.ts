import { boxAt, boxCount, type Box } from './boxes.js';
import { boxIou } from './box-iou.js';

type Boxes = readonly Box[] | ArrayLike<number>;

/** Indices sorted by descending score; equal scores keep index order. */
function byScore(indices: number[], scores: ArrayLike<number>): number[] {
  return indices.sort((i, j) => scores[j]! - scores[i]! || i - j);
}

/**
 * Greedy non-maximum suppression on xyxy boxes (Box[] or a flat N*4 array): visits boxes from the
 * highest score down and drops every later box whose IoU with a kept one exceeds iouThreshold.
 * Returns the kept indices in descending score order.
 */
export function nms(boxes: Boxes, scores: ArrayLike<number>, iouThreshold: number): number[] {
  const n = boxCount(boxes);
  if (scores.length !== n) throw new Error(`nms: ${n} boxes but ${scores.length} scores`);
  return suppress(
    boxes,
    byScore(
      Array.from({ length: n }, (_, i) => i),
      scores,
    ),
    iouThreshold,
  );
}

/**
 * Class-wise NMS: boxes only suppress boxes of the same class. Returns the kept indices of all
 * classes together in descending score order.
 */
export function batchedNms(
  boxes: Boxes,
  scores: ArrayLike<number>,
  classes: ArrayLike<number>,
  iouThreshold: number,
): number[] {
  const n = boxCount(boxes);
  if (scores.length !== n || classes.length !== n) {
    throw new Error(`batchedNms: ${n} boxes, ${scores.length} scores, ${classes.length} classes`);
  }
  const groups = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const g = groups.get(classes[i]!);
    if (g) g.push(i);
    else groups.set(classes[i]!, [i]);
  }
  const kept: number[] = [];
  for (const members of groups.values()) kept.push(...suppress(boxes, byScore(members, scores), iouThreshold));
  return byScore(kept, scores);
}

function suppress(boxes: Boxes, order: number[], iouThreshold: number): number[] {
  const keep: number[] = [];
  const keptBoxes: Box[] = [];
  for (const i of order) {
    const b = boxAt(boxes, i);
    if (keptBoxes.every((k) => boxIou(k, b) <= iouThreshold)) {
      keep.push(i);
      keptBoxes.push(b);
    }
  }
  return keep;
}
