import { tf } from '../engine/engine.js';
import type { Rng } from '../util/random.js';
import { Module, init } from './module.js';

/** GroupNorm on NHWC tensors (PyTorch semantics: biased variance per (sample, group), eps inside the sqrt). */
export class GroupNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    rng: Rng,
    readonly eps = 1e-5,
  ) {
    super();
    if (numChannels % numGroups !== 0)
      throw new Error(`GroupNorm: ${numChannels} channels do not split into ${numGroups} groups`);
    this.weight = this.param('weight', [numChannels], init.ones(), rng);
    this.bias = this.param('bias', [numChannels], init.zeros(), rng);
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape;
      const g = this.numGroups;
      const grouped = tf.reshape(x, [b, h * w, g, c / g]);
      const mean = tf.mean(grouped, [1, 3], true);
      const centered = tf.sub(grouped, mean);
      const variance = tf.mean(tf.square(centered), [1, 3], true);
      const normed = tf.reshape(tf.mul(centered, tf.rsqrt(tf.add(variance, this.eps))), [b, h, w, c]);
      return tf.add(tf.mul(normed, this.weight), this.bias) as tf.Tensor4D;
    });
  }
}
