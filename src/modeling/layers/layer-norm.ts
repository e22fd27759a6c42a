import { tf } from '../../engine/engine.js';
import type { Rng } from '../../util/random.js';
import { Module, init } from '../module.js';

/** LayerNorm over the last axis (PyTorch semantics: biased variance, eps inside the sqrt). */
export class LayerNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(readonly dim: number, rng: Rng, readonly eps = 1e-5) {
    super();
    this.weight = this.param('weight', [dim], init.ones(), rng);
    this.bias = this.param('bias', [dim], init.zeros(), rng);
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const mean = tf.mean(x, -1, true);
      const centered = tf.sub(x, mean);
      const variance = tf.mean(tf.square(centered), -1, true);
      const normed = tf.mul(centered, tf.rsqrt(tf.add(variance, this.eps)));
      return tf.add(tf.mul(normed, this.weight), this.bias);
    });
  }
}
