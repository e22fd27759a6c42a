import { tf } from '../engine/engine.js';
import type { Rng } from '../util/random.js';
import { Module, init } from './module.js';
import { Linear } from './linear.js';

/** detrex MLP: `layers.N` linear layers with ReLU between them (none after the last). */
export class Mlp extends Module {
  readonly layers: Linear[];

  constructor(
    inDim: number,
    hiddenDim: number,
    outDim: number,
    numLayers: number,
    rng: Rng,
    options: { zeroLast?: boolean } = {},
  ) {
    super();
    const dims = [inDim, ...Array<number>(numLayers - 1).fill(hiddenDim), outDim];
    this.layers = this.childList(
      'layers',
      dims.slice(0, -1).map((d, i) => {
        const last = i === numLayers - 1;
        return new Linear(
          d,
          dims[i + 1]!,
          rng,
          last && options.zeroLast ? { weightInit: init.zeros(), biasInit: init.zeros() } : {},
        );
      }),
    );
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let y = x;
      this.layers.forEach((layer, i) => {
        y = layer.forward(y);
        if (i < this.layers.length - 1) y = tf.relu(y);
      });
      return y;
    });
  }
}
