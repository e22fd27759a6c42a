import { tf } from '../../engine/engine.js';
import type { Rng } from '../../util/random.js';
import { Module, init } from '../../nn/module.js';
import { Linear } from '../../nn/linear.js';
import { LayerNorm } from '../../nn/layer-norm.js';

export interface SwiGluOptions {
  /** EVA-02 "sub-LN": a LayerNorm over the hidden units before w3 (`ffn_ln`). */
  subLn: boolean;
  layerNormEps: number;
}

/** EVA-02's naive SwiGLU: w3(ffn_ln(silu(w1 x) * (w2 x))), every projection with a bias. */
export class SwiGlu extends Module {
  readonly w1: Linear;
  readonly w2: Linear;
  readonly ffnLn: LayerNorm | null;
  readonly w3: Linear;

  constructor(
    readonly dim: number,
    readonly hidden: number,
    rng: Rng,
    options: SwiGluOptions,
  ) {
    super();
    const weightInit = init.truncatedNormal(0.02);
    this.w1 = this.child('w1', new Linear(dim, hidden, rng, { weightInit, biasInit: init.zeros() }));
    this.w2 = this.child('w2', new Linear(dim, hidden, rng, { weightInit, biasInit: init.zeros() }));
    this.ffnLn = options.subLn ? this.child('ffn_ln', new LayerNorm(hidden, rng, options.layerNormEps)) : null;
    this.w3 = this.child('w3', new Linear(hidden, dim, rng, { weightInit, biasInit: init.zeros() }));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const gate = this.w1.forward(x);
      let h = tf.mul(tf.mul(gate, tf.sigmoid(gate)), this.w2.forward(x));
      if (this.ffnLn) h = this.ffnLn.forward(h);
      return this.w3.forward(h);
    });
  }
}
