import { tf } from '../engine/engine.js';
import type { Rng } from '../util/random.js';
import { Module, init, type Initializer } from './module.js';
import { Conv2d, applyConv2d } from './conv2d.js';
import { GroupNorm } from './group-norm.js';

export interface ConvNormOptions {
  bias: boolean;
  /** GroupNorm groups, or null for no norm. */
  groups: number | null;
  relu?: boolean;
  weightInit?: Initializer;
}

/**
 * detectron2's Conv2d(norm=GN): the conv's `weight` (and `bias`) on this module, the norm as
 * `norm.*`, then an optional ReLU. Weight HWIO.
 */
export class Detectron2ConvNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;
  readonly norm: GroupNorm | null;
  private readonly relu: boolean;

  constructor(
    inChannels: number,
    outChannels: number,
    readonly kernelSize: number,
    rng: Rng,
    options: ConvNormOptions,
  ) {
    super();
    const limit = 1 / Math.sqrt(inChannels * kernelSize * kernelSize);
    this.weight = this.param(
      'weight',
      [kernelSize, kernelSize, inChannels, outChannels],
      options.weightInit ?? init.uniform(limit),
      rng,
    );
    this.bias = options.bias ? this.param('bias', [outChannels], init.zeros(), rng) : null;
    this.norm = options.groups ? this.child('norm', new GroupNorm(options.groups, outChannels, rng)) : null;
    this.relu = options.relu ?? false;
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let y = applyConv2d(x, this.weight as tf.Tensor4D, this.bias, 1, (this.kernelSize - 1) / 2);
      if (this.norm) y = this.norm.forward(y);
      return this.relu ? (tf.relu(y) as tf.Tensor4D) : y;
    });
  }
}

/** detrex ConvNormAct as ChannelMapper uses it: `conv.*` then `norm.*`. */
export class ConvNormAct extends Module {
  readonly conv: Conv2d;
  readonly norm: GroupNorm | null;

  constructor(inChannels: number, outChannels: number, kernelSize: number, rng: Rng, options: ConvNormOptions) {
    super();
    this.conv = this.child(
      'conv',
      new Conv2d(inChannels, outChannels, kernelSize, rng, { bias: options.bias, weightInit: options.weightInit }),
    );
    this.norm = options.groups ? this.child('norm', new GroupNorm(options.groups, outChannels, rng)) : null;
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const y = this.conv.forward(x);
      return this.norm ? this.norm.forward(y) : y;
    });
  }
}
