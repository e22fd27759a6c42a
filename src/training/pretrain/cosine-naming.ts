import { tf } from '../../engine/engine.js';

/** Rows scaled to unit length. */
export function l2normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.add(tf.norm(x, 'euclidean', 1, true), 1e-6)) as tf.Tensor2D);
}

/**
 * Naming objects from their features `z` [N, D] among names embedded as unit rows `text` [P, D]:
 * the mean cross-entropy over cosine logits divided by `temperature`, and the share of rows
 * whose best name is their label.
 */
export function cosineNaming(
  z: tf.Tensor2D,
  text: tf.Tensor2D,
  labels: Int32Array,
  temperature: number,
): { loss: tf.Scalar; accuracy: number } {
  let accuracy = 0;
  const loss = tf.tidy(() => {
    const logits = tf.div(tf.matMul(l2normalize(z), text, false, true), temperature) as tf.Tensor2D;
    const best = tf.argMax(logits, 1).dataSync();
    accuracy = labels.reduce((a, l, i) => a + (best[i] === l ? 1 : 0), 0) / Math.max(labels.length, 1);
    const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), text.shape[0]);
    return tf.mean(tf.neg(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), 1))) as tf.Scalar;
  });
  return { loss, accuracy };
}
