import { tf } from '../../engine/engine.js';

/**
 * Naming each row's object by its label among its candidate columns only (`candidates` [rows x
 * columns], 1 = in the softmax), from logits [rows, columns]: the mean cross-entropy, and the
 * share of rows whose best candidate is the label.
 */
export function phraseNaming(
  logits: tf.Tensor2D,
  labels: Int32Array,
  candidates: Uint8Array,
): { loss: tf.Scalar; accuracy: number } {
  const [n, p] = logits.shape;
  if (labels.length !== n || candidates.length !== n * p)
    throw new Error(`phraseNaming: ${n} rows, ${labels.length} labels, ${candidates.length / p} candidate rows`);
  let accuracy = 0;
  const loss = tf.tidy(() => {
    const masked = tf.add(
      logits,
      tf.tensor2d(
        Float32Array.from(candidates, (c) => (c ? 0 : -1e9)),
        [n, p],
      ),
    );
    const best = tf.argMax(masked, 1).dataSync();
    accuracy = labels.reduce((a, l, i) => a + (best[i] === l ? 1 : 0), 0) / Math.max(n, 1);
    const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), p);
    return tf.mean(tf.neg(tf.sum(tf.mul(onehot, tf.logSoftmax(masked)), 1))) as tf.Scalar;
  });
  return { loss, accuracy };
}
