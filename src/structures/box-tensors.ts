import { tf } from '../engine/engine.js';

/**
 * Differentiable box geometry on tensors whose last axis holds 4 coordinates, for losses and
 * matching costs. Built from slice/concat/elementwise ops only, so gradients flow on every backend.
 */

/** Small constant keeping the divisions finite for degenerate (zero-area) predictions. */
const EPS = 1e-7;

/** The four coordinate tensors of a box tensor, each [..., 1]. */
type Coords = [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];

function coords(boxes: tf.Tensor): Coords {
  const last = boxes.shape[boxes.rank - 1];
  if (last !== 4) throw new Error(`box tensor: last axis must be 4, got shape [${boxes.shape.join(', ')}]`);
  return tf.split(boxes, 4, boxes.rank - 1) as Coords;
}

/** [..., 4] cxcywh to [..., 4] xyxy. */
export function boxCxcywhToXyxyTensor(boxes: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [cx, cy, w, h] = coords(boxes);
    const hw = tf.mul(w, 0.5);
    const hh = tf.mul(h, 0.5);
    return tf.concat([tf.sub(cx, hw), tf.sub(cy, hh), tf.add(cx, hw), tf.add(cy, hh)], boxes.rank - 1);
  });
}

/** [..., 4] xyxy to [..., 4] cxcywh. */
export function boxXyxyToCxcywhTensor(boxes: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [x1, y1, x2, y2] = coords(boxes);
    return tf.concat(
      [tf.mul(tf.add(x1, x2), 0.5), tf.mul(tf.add(y1, y2), 0.5), tf.sub(x2, x1), tf.sub(y2, y1)],
      boxes.rank - 1,
    );
  });
}

/**
 * GIoU from matching coordinate tensors (all of one broadcastable shape); shared by the
 * elementwise and pairwise forms.
 */
function giouFromCoords(a: Coords, b: Coords): tf.Tensor {
  const [ax1, ay1, ax2, ay2] = a;
  const [bx1, by1, bx2, by2] = b;
  const areaA = tf.mul(tf.sub(ax2, ax1), tf.sub(ay2, ay1));
  const areaB = tf.mul(tf.sub(bx2, bx1), tf.sub(by2, by1));
  const iw = tf.relu(tf.sub(tf.minimum(ax2, bx2), tf.maximum(ax1, bx1)));
  const ih = tf.relu(tf.sub(tf.minimum(ay2, by2), tf.maximum(ay1, by1)));
  const inter = tf.mul(iw, ih);
  const union = tf.sub(tf.add(areaA, areaB), inter);
  const iou = tf.div(inter, tf.add(union, EPS));
  const ew = tf.sub(tf.maximum(ax2, bx2), tf.minimum(ax1, bx1));
  const eh = tf.sub(tf.maximum(ay2, by2), tf.minimum(ay1, by1));
  const enclosing = tf.mul(ew, eh);
  return tf.sub(iou, tf.div(tf.sub(enclosing, union), tf.add(enclosing, EPS)));
}

/** Elementwise GIoU of xyxy boxes a[i] and b[i]: [N, 4] x [N, 4] -> [N]. */
export function giouTensor(aXyxy: tf.Tensor, bXyxy: tf.Tensor): tf.Tensor1D {
  if (aXyxy.rank !== 2 || bXyxy.rank !== 2 || aXyxy.shape[0] !== bXyxy.shape[0]) {
    throw new Error(`giouTensor: expected two [N, 4] tensors, got [${aXyxy.shape}] and [${bXyxy.shape}]`);
  }
  return tf.tidy(() => tf.reshape(giouFromCoords(coords(aXyxy), coords(bXyxy)), [aXyxy.shape[0]]) as tf.Tensor1D);
}

/** GIoU of every xyxy box in a against every one in b: [N, 4] x [M, 4] -> [N, M]. */
export function pairwiseGiouTensor(aXyxy: tf.Tensor, bXyxy: tf.Tensor): tf.Tensor2D {
  if (aXyxy.rank !== 2 || bXyxy.rank !== 2) {
    throw new Error(`pairwiseGiouTensor: expected [N, 4] and [M, 4], got [${aXyxy.shape}] and [${bXyxy.shape}]`);
  }
  return tf.tidy(() => {
    const m = bXyxy.shape[0];
    // a's coordinates as [N, 1] columns and b's as [1, M] rows broadcast to [N, M].
    const bRows = coords(bXyxy).map((c) => tf.reshape(c, [1, m])) as Coords;
    return giouFromCoords(coords(aXyxy), bRows) as tf.Tensor2D;
  });
}

/** IoU of every xyxy box in a against every one in b: [N, 4] x [M, 4] -> [N, M]. */
export function pairwiseIouTensor(aXyxy: tf.Tensor, bXyxy: tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => {
    const m = bXyxy.shape[0];
    const [ax1, ay1, ax2, ay2] = coords(aXyxy);
    const [bx1, by1, bx2, by2] = coords(bXyxy).map((c) => tf.reshape(c, [1, m])) as Coords;
    const areaA = tf.mul(tf.sub(ax2, ax1), tf.sub(ay2, ay1));
    const areaB = tf.mul(tf.sub(bx2, bx1), tf.sub(by2, by1));
    const inter = tf.mul(
      tf.relu(tf.sub(tf.minimum(ax2, bx2), tf.maximum(ax1, bx1))),
      tf.relu(tf.sub(tf.minimum(ay2, by2), tf.maximum(ay1, by1))),
    );
    return tf.div(inter, tf.add(tf.sub(tf.add(areaA, areaB), inter), EPS)) as tf.Tensor2D;
  });
}
