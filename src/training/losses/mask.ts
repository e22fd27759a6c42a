import { tf } from '../../engine/engine.js';
import { bceWithLogits } from './focal.js';

/**
 * Mask losses on matched (prediction, target) pairs, each row one mask flattened to K values
 * (all pixels of the mask-head grid, or K sampled points). Both are summed over masks and divided
 * by the number of masks in the batch, as Mask2Former/MaskDINO do.
 */

/** Mean binary cross-entropy per mask, summed over masks, over `numMasks`. */
export function maskBceLoss(logits: tf.Tensor2D, targets: tf.Tensor2D, numMasks: number): tf.Scalar {
  return tf.tidy(() => {
    const perMask = tf.mean(bceWithLogits(logits, targets), 1);
    return tf.div(tf.sum(perMask), tf.scalar(Math.max(numMasks, 1))) as tf.Scalar;
  });
}

/** Dice loss 1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1) with p = sigmoid(logit), per mask. */
export function diceLoss(logits: tf.Tensor2D, targets: tf.Tensor2D, numMasks: number): tf.Scalar {
  return tf.tidy(() => {
    const p = tf.sigmoid(logits);
    const numerator = tf.add(tf.mul(tf.scalar(2), tf.sum(tf.mul(p, targets), 1)), tf.scalar(1));
    const denominator = tf.add(tf.add(tf.sum(p, 1), tf.sum(targets, 1)), tf.scalar(1));
    const perMask = tf.sub(tf.scalar(1), tf.div(numerator, denominator));
    return tf.div(tf.sum(perMask), tf.scalar(Math.max(numMasks, 1))) as tf.Scalar;
  });
}
