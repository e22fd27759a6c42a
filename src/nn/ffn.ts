import { tf } from '../engine/engine.js';
import type { Rng } from '../util/random.js';
import { Module } from './module.js';
import { Linear } from './linear.js';

/** Holder for detrex's nn.Sequential(Linear, ReLU, Dropout): only index 0 has weights. */
class LinearReluBlock extends Module {
  readonly linear: Linear;
  constructor(inDim: number, outDim: number, rng: Rng) {
    super();
    this.linear = this.child('0', new Linear(inDim, outDim, rng));
  }
}

/**
 * detrex FFN with two layers and the identity added: x + W2 relu(W1 x). Parameter names follow the
 * PyTorch nn.Sequential: `layers.0.0.*` (first linear) and `layers.1.*` (second).
 */
export class Ffn extends Module {
  private readonly first: Linear;
  private readonly second: Linear;

  constructor(
    readonly embedDim: number,
    readonly hiddenDim: number,
    rng: Rng,
  ) {
    super();
    const holder = this.child('layers', new FfnLayers(embedDim, hiddenDim, rng));
    this.first = holder.block.linear;
    this.second = holder.out;
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.add(x, this.second.forward(tf.relu(this.first.forward(x)))));
  }
}

class FfnLayers extends Module {
  readonly block: LinearReluBlock;
  readonly out: Linear;
  constructor(embedDim: number, hiddenDim: number, rng: Rng) {
    super();
    this.block = this.child('0', new LinearReluBlock(embedDim, hiddenDim, rng));
    this.out = this.child('1', new Linear(hiddenDim, embedDim, rng));
  }
}
