import { tf } from '../engine/engine.js';
import type { Rng } from '../util/random.js';
import { Module, init, type Initializer } from './module.js';

export interface LinearOptions {
  bias?: boolean;
  weightInit?: Initializer;
  biasInit?: Initializer;
}

/** y = x W + b over the last axis, for inputs of any rank (flattened to 2-D for a fast matMul). */
export class Linear extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;

  constructor(
    readonly inDim: number,
    readonly outDim: number,
    rng: Rng,
    options: LinearOptions = {},
  ) {
    super();
    this.weight = this.param('weight', [inDim, outDim], options.weightInit ?? init.torchDefault(), rng);
    this.bias =
      options.bias === false
        ? null
        : this.param('bias', [outDim], options.biasInit ?? init.uniform(1 / Math.sqrt(inDim)), rng);
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const flat = tf.reshape(x, [-1, this.inDim]);
      let y = tf.matMul(flat, this.weight);
      if (this.bias) y = tf.add(y, this.bias);
      return tf.reshape(y, [...lead, this.outDim]);
    });
  }
}
