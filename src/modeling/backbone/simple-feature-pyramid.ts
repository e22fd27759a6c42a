import { tf } from '../../engine/engine.js';
import type { Rng } from '../../util/random.js';
import { Module, init } from '../../nn/module.js';
import { LayerNorm } from '../../nn/layer-norm.js';
import { gelu } from '../../nn/gelu.js';

/** Plain-object description of ViTDet's SimpleFeaturePyramid (+ LastLevelMaxPool). */
export interface SimpleFeaturePyramidConfig {
  /** Channels of the backbone feature map. */
  inChannels: number;
  /** Stride of the backbone feature map (16 for a /16 ViT). */
  inStride: number;
  outChannels: number;
  /** Up/down-sampling per level; ViTDet: [4, 2, 1, 0.5] -> p2..p5. */
  scaleFactors: number[];
  /**
   * Levels made the same way for the mask head alone (not in APE, whose transformer reads p2 as
   * well): [4] gives a stride-4 p2 (simfp_2) without the cost of 4x the encoder tokens. null = none.
   */
  maskOnlyScales?: number[] | null;
  /** Add p(last+1) = p(last)[::2, ::2] (detectron2 LastLevelMaxPool). */
  topBlock: boolean;
  /** Channels-first LayerNorm eps (detectron2 "LN": 1e-6). */
  layerNormEps: number;
}

export function apePyramidConfig(inChannels: number, outChannels = 256): SimpleFeaturePyramidConfig {
  return {
    inChannels,
    inStride: 16,
    outChannels,
    scaleFactors: [4, 2, 1, 0.5],
    maskOnlyScales: null,
    topBlock: true,
    layerNormEps: 1e-6,
  };
}

/**
 * ConvTranspose2d(kernel 2, stride 2) with bias, done as one 2-D matMul plus a depth-to-space
 * reshape (each input pixel writes its own 2x2 block, so there is no overlap to sum).
 * Weight layout [2, 2, out, in] (TF conv2dTranspose's).
 */
export class ConvTranspose2x2 extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    rng: Rng,
  ) {
    super();
    // torch's default for ConvTranspose2d: kaiming-uniform(a=sqrt 5) with fan_in = weight.size(1) * k * k = out * 4.
    const limit = 1 / Math.sqrt(outChannels * 4);
    this.weight = this.param('weight', [2, 2, outChannels, inChannels], init.uniform(limit), rng);
    this.bias = this.param('bias', [outChannels], init.uniform(limit), rng);
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape;
      const co = this.outChannels;
      // [ky, kx, out, in] -> [in, ky, kx, out] so one row of the product is a pixel's 2x2xout block.
      const kernel = tf.reshape(tf.transpose(this.weight, [3, 0, 1, 2]), [c, 4 * co]);
      const blocks = tf.matMul(tf.reshape(x, [b * h * w, c]), kernel);
      // [b*h, w, ky, kx*out] -> [b*h, ky, w, kx*out] -> [b, 2h, 2w, out]
      const rows = tf.transpose(tf.reshape(blocks, [b * h, w, 2, 2 * co]), [0, 2, 1, 3]);
      return tf.add(tf.reshape(rows, [b, 2 * h, 2 * w, co]), this.bias) as tf.Tensor4D;
    });
  }
}

/** detectron2 Conv2d without bias followed by its `norm` (channels-first LN = LN over NHWC channels). Weight HWIO. */
export class ConvNorm extends Module {
  readonly weight: tf.Variable;
  readonly norm: LayerNorm;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: 1 | 3,
    eps: number,
    rng: Rng,
  ) {
    super();
    // c2_msra_fill: kaiming normal, fan_out mode, relu gain.
    const std = Math.sqrt(2 / (outChannels * kernelSize * kernelSize));
    this.weight = this.param('weight', [kernelSize, kernelSize, inChannels, outChannels], init.normal(std), rng);
    this.norm = this.child('norm', new LayerNorm(outChannels, rng, eps));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape;
      let y: tf.Tensor4D;
      if (this.kernelSize === 1) {
        const kernel = tf.reshape(this.weight, [c, this.outChannels]);
        y = tf.reshape(tf.matMul(tf.reshape(x, [b * h * w, c]), kernel), [b, h, w, this.outChannels]);
      } else {
        y = tf.conv2d(x, this.weight as tf.Tensor4D, 1, 'same');
      }
      return this.norm.forward(y) as tf.Tensor4D;
    });
  }
}

/** Channels-first LayerNorm as its own pyramid layer (simfp_2.1). */
class ChannelNorm extends LayerNorm {}

/** 2x2 stride-2 max pool (floor for odd sizes) from reshapes and max reductions: exact gradients on every backend. */
export function maxPool2x2(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const oh = Math.floor(h / 2);
    const ow = Math.floor(w / 2);
    let even: tf.Tensor4D = x;
    if (oh * 2 !== h || ow * 2 !== w) even = tf.slice(x, [0, 0, 0, 0], [b, oh * 2, ow * 2, c]);
    const rowMax = tf.max(tf.reshape(even, [b * oh, 2, ow * 2 * c]), 1);
    const colMax = tf.max(tf.reshape(rowMax, [b * oh * ow, 2, c]), 1);
    return tf.reshape(colMax, [b, oh, ow, c]);
  });
}

/** detectron2 LastLevelMaxPool: max_pool2d(kernel 1, stride 2) = every other row and column, from the first. */
export function subsample2(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.maxPool(x, 1, 2, 'valid'));
}

type StageOp =
  | { kind: 'deconv'; m: ConvTranspose2x2 }
  | { kind: 'ln'; m: ChannelNorm }
  | { kind: 'gelu' }
  | { kind: 'maxpool' }
  | { kind: 'conv'; m: ConvNorm };

/** One pyramid level: an nn.Sequential whose parameter-bearing entries keep their torch indices. */
class PyramidStage extends Module {
  private readonly ops: StageOp[] = [];

  constructor(
    readonly scale: number,
    config: SimpleFeaturePyramidConfig,
    rng: Rng,
  ) {
    super();
    const dim = config.inChannels;
    const eps = config.layerNormEps;
    let outDim = dim;
    const push = (op: StageOp): void => {
      const index = String(this.ops.length);
      if ('m' in op) this.child(index, op.m);
      this.ops.push(op);
    };
    if (scale === 4) {
      push({ kind: 'deconv', m: new ConvTranspose2x2(dim, dim / 2, rng) });
      push({ kind: 'ln', m: new ChannelNorm(dim / 2, rng, eps) });
      push({ kind: 'gelu' });
      push({ kind: 'deconv', m: new ConvTranspose2x2(dim / 2, dim / 4, rng) });
      outDim = dim / 4;
    } else if (scale === 2) {
      push({ kind: 'deconv', m: new ConvTranspose2x2(dim, dim / 2, rng) });
      outDim = dim / 2;
    } else if (scale === 0.5) {
      push({ kind: 'maxpool' });
    } else if (scale !== 1) {
      throw new Error(`SimpleFeaturePyramid: scale factor ${scale} is not supported (use 4, 2, 1 or 0.5)`);
    }
    push({ kind: 'conv', m: new ConvNorm(outDim, config.outChannels, 1, eps, rng) });
    push({ kind: 'conv', m: new ConvNorm(config.outChannels, config.outChannels, 3, eps, rng) });
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let y = x;
      for (const op of this.ops) {
        if (op.kind === 'gelu') y = gelu(y) as tf.Tensor4D;
        else if (op.kind === 'maxpool') y = maxPool2x2(y);
        else y = op.m.forward(y) as tf.Tensor4D;
      }
      return y;
    });
  }
}

/**
 * ViTDet SimpleFeaturePyramid on a single backbone map (NHWC): levels p2..p5 from scale factors
 * 4, 2, 1, 0.5 and p6 from LastLevelMaxPool. Parameter names as released (`simfp_2.0.weight`, ...)
 * with `model_vision.backbone.` stripped.
 */
export class SimpleFeaturePyramid extends Module {
  readonly stages: { name: string; stride: number; stage: PyramidStage }[] = [];
  /** The mask-only levels (maskOnlyScales), in the output beside the others but not in featureNames. */
  readonly maskOnlyStages: { name: string; stride: number; stage: PyramidStage }[] = [];
  readonly featureNames: string[];

  constructor(
    readonly config: SimpleFeaturePyramidConfig,
    rng: Rng,
  ) {
    super();
    const { inChannels, scaleFactors } = config;
    const maskOnly = config.maskOnlyScales ?? [];
    if ([...scaleFactors, ...maskOnly].includes(4) && inChannels % 4 !== 0)
      throw new Error(`SimpleFeaturePyramid: inChannels ${inChannels} must be divisible by 4 for scale 4`);
    if ([...scaleFactors, ...maskOnly].includes(2) && inChannels % 2 !== 0)
      throw new Error(`SimpleFeaturePyramid: inChannels ${inChannels} must be divisible by 2 for scale 2`);
    for (const scale of [...scaleFactors, ...maskOnly]) {
      const stride = config.inStride / scale;
      const level = Math.log2(stride);
      if (!Number.isInteger(level)) throw new Error(`SimpleFeaturePyramid: stride ${stride} is not a power of 2`);
      if ([...this.stages, ...this.maskOnlyStages].some((s) => s.stride === stride))
        throw new Error(`SimpleFeaturePyramid: scale ${scale} is listed twice`);
      const stage = this.child(`simfp_${level}`, new PyramidStage(scale, config, rng));
      (this.stages.length < scaleFactors.length ? this.stages : this.maskOnlyStages).push({
        name: `p${level}`,
        stride,
        stage,
      });
    }
    this.featureNames = this.stages.map((s) => s.name);
    if (config.topBlock) {
      const last = this.stages[this.stages.length - 1]!;
      this.featureNames.push(`p${Math.log2(last.stride) + 1}`);
    }
  }

  /** Strides of the outputs, in featureNames order. */
  get strides(): number[] {
    const s = this.stages.map((x) => x.stride);
    if (this.config.topBlock) s.push(s[s.length - 1]! * 2);
    return s;
  }

  /** feature [B, h, w, inChannels] -> { p2, ..., p6 } each [B, h', w', outChannels]. */
  forward(feature: tf.Tensor4D): Record<string, tf.Tensor4D> {
    const out: Record<string, tf.Tensor4D> = {};
    let last: tf.Tensor4D | null = null;
    for (const { name, stage } of this.stages) {
      last = stage.forward(feature);
      out[name] = last;
    }
    if (this.config.topBlock && last) out[this.featureNames[this.featureNames.length - 1]!] = subsample2(last);
    for (const { name, stage } of this.maskOnlyStages) out[name] = stage.forward(feature);
    return out;
  }
}
