import { tf } from '../engine/engine.js';
import type { Rng } from '../util/random.js';
import { Module, init, type Initializer } from './module.js';

export interface Conv2dOptions {
  stride?: number;
  /** Zero padding on every side; the default keeps the size for odd kernels at stride 1. */
  padding?: number;
  bias?: boolean;
  weightInit?: Initializer;
}

/**
 * 2-D convolution on NHWC tensors, weight HWIO ([kh, kw, in, out]; PyTorch's [out, in, kh, kw]
 * transposed by (2, 3, 1, 0)). A 1x1 stride-1 kernel runs as one 2-D matMul: same numbers, and
 * its gradient avoids the conv-filter backprop kernel.
 */
export class Conv2d extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;
  readonly stride: number;
  readonly padding: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    rng: Rng,
    options: Conv2dOptions = {},
  ) {
    super();
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? (kernelSize - 1) / 2;
    if (!Number.isInteger(this.padding))
      throw new Error(`Conv2d: padding ${this.padding} is not an integer (kernel ${kernelSize})`);
    const fanIn = inChannels * kernelSize * kernelSize;
    this.weight = this.param(
      'weight',
      [kernelSize, kernelSize, inChannels, outChannels],
      options.weightInit ?? init.uniform(1 / Math.sqrt(fanIn)),
      rng,
    );
    this.bias =
      options.bias === false ? null : this.param('bias', [outChannels], init.uniform(1 / Math.sqrt(fanIn)), rng);
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return applyConv2d(x, this.weight as tf.Tensor4D, this.bias, this.stride, this.padding);
  }
}

/** NHWC conv with an HWIO weight; 1x1 stride-1 unpadded kernels run as one 2-D matMul. */
export function applyConv2d(
  x: tf.Tensor4D,
  weight: tf.Tensor4D,
  bias: tf.Tensor | null,
  stride: number,
  padding: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const [kh, kw, inC, outC] = weight.shape;
    if (c !== inC) throw new Error(`conv2d: input has ${c} channels, the weight expects ${inC}`);
    let y: tf.Tensor4D;
    if (kh === 1 && kw === 1 && stride === 1 && padding === 0) {
      y = tf.reshape(tf.matMul(tf.reshape(x, [b * h * w, c]), tf.reshape(weight, [c, outC])), [b, h, w, outC]);
    } else {
      const p = padding;
      const pad: [[number, number], [number, number], [number, number], [number, number]] = [
        [0, 0],
        [p, p],
        [p, p],
        [0, 0],
      ];
      y = tf.conv2d(x, weight, stride, p === 0 ? 'valid' : pad);
    }
    return bias ? (tf.add(y, bias) as tf.Tensor4D) : y;
  });
}

/** Xavier-uniform fill with zero bias, as fvcore's c2_xavier_fill (kaiming_uniform with a = 1). */
export function c2XavierInit(): Initializer {
  return (shape, rng) => {
    const fanIn = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const limit = Math.sqrt(3 / fanIn);
    return tf.randomUniform(shape, -limit, limit, 'float32', rng.seed());
  };
}
