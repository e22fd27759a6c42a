import { tf } from '../../engine/engine.js';
import { boxCxcywhToXyxyTensor, giouTensor } from '../../structures/box-tensors.js';

/**
 * Box regression losses on matched pairs, boxes [M, 4] as normalised cxcywh. Both are summed over
 * pairs and divided by the number of target boxes in the batch (DETR's num_boxes).
 */

export function boxL1Loss(pred: tf.Tensor2D, target: tf.Tensor2D, numBoxes: number): tf.Scalar {
  return tf.tidy(() => tf.div(tf.sum(tf.abs(tf.sub(pred, target))), tf.scalar(Math.max(numBoxes, 1))) as tf.Scalar);
}

export function giouLoss(pred: tf.Tensor2D, target: tf.Tensor2D, numBoxes: number): tf.Scalar {
  return tf.tidy(() => {
    const giou = giouTensor(boxCxcywhToXyxyTensor(pred), boxCxcywhToXyxyTensor(target));
    return tf.div(tf.sum(tf.sub(tf.scalar(1), giou)), tf.scalar(Math.max(numBoxes, 1))) as tf.Scalar;
  });
}
