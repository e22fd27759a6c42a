import { tf } from '../../engine/engine.js';

/**
 * Keeps a trainable text tower from mapping different prompts to one direction. The classifier
 * scores a query against each prompt's unit vector, so two prompts with nearly parallel vectors
 * get nearly equal logits whatever the image shows; once that happens the focal loss sends
 * almost no signal that would tell them apart (the tiny model trained from scratch fell into
 * this: its eight shape names reached pairwise cosines of 0.99). For each prompt, its closest
 * prompt of a different text costs max(0, cos - margin)^2; the loss is the mean over prompts.
 * Taking each prompt's closest partner (not the mean over all pairs) keeps one collapsed pair
 * from being diluted by the many pairs that are already apart.
 *
 * `embeddings` [P, D] are the tower's pooled outputs for `texts` (same order); identical texts
 * are not compared, and prompts with no different text count as 0.
 */
export function promptSeparationLoss(embeddings: tf.Tensor2D, texts: readonly string[], margin: number): tf.Scalar {
  const p = embeddings.shape[0];
  if (texts.length !== p) throw new Error(`promptSeparationLoss: ${p} embeddings for ${texts.length} texts`);
  const pairs = new Float32Array(p * p);
  let count = 0;
  for (let i = 0; i < p; i++) {
    for (let j = 0; j < p; j++) if (texts[i] !== texts[j]) pairs[i * p + j] = 1;
    if (pairs.subarray(i * p, (i + 1) * p).some((v) => v === 1)) count++;
  }
  return tf.tidy(() => {
    // No pair to compare: a zero that still depends on the embeddings, so every input has a gradient.
    if (count === 0) return tf.mul(tf.sum(embeddings), tf.scalar(0)) as tf.Scalar;
    const norms = tf.sqrt(tf.maximum(tf.sum(tf.square(embeddings), 1, true), 1e-24));
    const unit = tf.div(embeddings, norms) as tf.Tensor2D;
    const cosines = tf.matMul(unit, unit, false, true);
    const excess = tf.mul(tf.square(tf.relu(tf.sub(cosines, tf.scalar(margin)))), tf.tensor2d(pairs, [p, p]));
    return tf.div(tf.sum(tf.max(excess, 1)), tf.scalar(count)) as tf.Scalar;
  });
}
