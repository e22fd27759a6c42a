import { tf } from '../../engine/engine.js';

export interface FocalOptions {
  alpha?: number;
  gamma?: number;
}

/**
 * Elementwise sigmoid focal loss (Lin et al.): BCE-with-logits scaled by (1 - p_t)^gamma and the
 * class-balancing alpha_t. `alpha` < 0 turns the balancing off. Returns the unreduced tensor so
 * that callers can weight it (federated masks, ignored prompts) before summing.
 */
export function sigmoidFocalElementwise(logits: tf.Tensor, targets: tf.Tensor, options: FocalOptions = {}): tf.Tensor {
  const alpha = options.alpha ?? 0.25;
  const gamma = options.gamma ?? 2;
  return tf.tidy(() => {
    const p = tf.sigmoid(logits);
    const ce = bceWithLogits(logits, targets);
    // 1 - p_t = p + t - 2 p t for t in [0, 1]
    const oneMinusPt = tf.sub(tf.add(p, targets), tf.mul(tf.scalar(2), tf.mul(p, targets)));
    let loss =
      gamma === 0 ? ce : tf.mul(ce, gamma === 2 ? tf.square(oneMinusPt) : tf.pow(oneMinusPt, tf.scalar(gamma)));
    if (alpha >= 0) {
      const alphaT = tf.add(tf.scalar(1 - alpha), tf.mul(tf.scalar(2 * alpha - 1), targets));
      loss = tf.mul(loss, alphaT);
    }
    return loss;
  });
}

/** Numerically stable binary cross-entropy on logits: max(x, 0) - x t + log(1 + exp(-|x|)). */
export function bceWithLogits(logits: tf.Tensor, targets: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.add(tf.sub(tf.relu(logits), tf.mul(logits, targets)), tf.softplus(tf.neg(tf.abs(logits)))));
}

/**
 * Sum of the (optionally weighted) focal loss divided by the number of matched targets, the
 * normalisation of DETR-family criteria (loss.mean(1).sum() / num_boxes * num_queries).
 */
export function sigmoidFocalLoss(
  logits: tf.Tensor,
  targets: tf.Tensor,
  normaliser: number,
  options: FocalOptions & { weights?: tf.Tensor } = {},
): tf.Scalar {
  return tf.tidy(() => {
    let loss = sigmoidFocalElementwise(logits, targets, options);
    if (options.weights) loss = tf.mul(loss, options.weights);
    return tf.div(tf.sum(loss), tf.scalar(Math.max(normaliser, 1))) as tf.Scalar;
  });
}
