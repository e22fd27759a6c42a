import { tf } from '../engine/engine.js';

/** Exact GELU (torch's default, the erf form): x * Φ(x). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
}
