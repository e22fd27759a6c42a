import { tf } from '../../engine/engine.js';
import type { Rng } from '../../util/random.js';
import { Module, ModuleList, init } from '../../nn/module.js';
import { Conv2d } from '../../nn/conv2d.js';
import { LayerNorm } from '../../nn/layer-norm.js';
import { Linear } from '../../nn/linear.js';
import { gelu } from '../../nn/gelu.js';

/**
 * A convolutional stem beside the ViT (after ViT-Adapter's spatial prior module): 3x3 stride-2
 * convs on the image, each followed by a channel LayerNorm and GELU (and `extraConvs` residual
 * stride-1 blocks), so stage k has stride 2^(k+1). Each stage whose stride matches a pyramid
 * level is projected to the pyramid width and added to that level.
 */
export interface ConvStemConfig {
  /** Output channels of the successive stride-2 convs. */
  channels: number[];
  /**
   * Residual stride-1 3x3 blocks `x + gelu(norm(conv(x)))` after each stage's stride-2 conv
   * (absent = 0, the stem of the first stemmed models). Each widens the stage's receptive field
   * by two of its strides: at 1, the stride-8 and stride-16 stages see 43 and 91 px instead of 15
   * and 31, so they cover the synthetic world's small shapes (18-33 px) and their surroundings.
   */
  extraConvs?: number;
}

/** One residual refinement block of a stem stage: `x + gelu(norm(conv(x)))`, 3x3 stride 1. */
class StemRefineBlock extends Module {
  private readonly conv: Conv2d;
  private readonly norm: LayerNorm;

  constructor(channels: number, eps: number, rng: Rng) {
    super();
    this.conv = this.child('conv', new Conv2d(channels, channels, 3, rng, { stride: 1, padding: 1, bias: false }));
    this.norm = this.child('norm', new LayerNorm(channels, rng, eps));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => tf.add(x, gelu(this.norm.forward(this.conv.forward(x)))) as tf.Tensor4D);
  }
}

/**
 * A 16-pixel patch embedding sees an object of 11-17 pixels as one or two tokens; the stem gives
 * the finer pyramid levels features whose receptive field matches such objects. The projections
 * start at zero, so adding a stem to trained weights leaves every output unchanged until
 * training moves them.
 */
export class ConvStem extends Module {
  private readonly convs: Conv2d[];
  private readonly norms: LayerNorm[];
  /** Per stage, its residual refinement blocks (empty without `extraConvs`). */
  private readonly refine: ModuleList<StemRefineBlock>[];
  /** Pyramid level name and the stem stage that feeds it. */
  readonly outputs: { level: string; stage: number; proj: Linear }[] = [];

  constructor(
    config: ConvStemConfig,
    levels: { names: readonly string[]; strides: readonly number[] },
    outChannels: number,
    eps: number,
    rng: Rng,
  ) {
    super();
    const { channels } = config;
    const extraConvs = config.extraConvs ?? 0;
    if (channels.length === 0 || !channels.every((c) => Number.isInteger(c) && c > 0))
      throw new Error(`ConvStem: channels must be positive integers, got ${JSON.stringify(channels)}`);
    if (!(Number.isInteger(extraConvs) && extraConvs >= 0))
      throw new Error(`ConvStem: extraConvs must be a non-negative integer, got ${JSON.stringify(config.extraConvs)}`);
    this.convs = this.childList(
      'convs',
      channels.map(
        (c, k) => new Conv2d(k === 0 ? 3 : channels[k - 1]!, c, 3, rng, { stride: 2, padding: 1, bias: false }),
      ),
    );
    this.norms = this.childList(
      'norms',
      channels.map((c) => new LayerNorm(c, rng, eps)),
    );
    // Named refine.<stage>.<block>; none are registered at extraConvs 0, so stems without them
    // keep exactly their parameter names and checkpoints.
    this.refine =
      extraConvs === 0
        ? []
        : this.childList(
            'refine',
            channels.map(
              (c) => new ModuleList(Array.from({ length: extraConvs }, () => new StemRefineBlock(c, eps, rng))),
            ),
          );
    levels.names.forEach((level, i) => {
      const stage = channels.findIndex((_, k) => 2 ** (k + 1) === levels.strides[i]);
      if (stage < 0) return;
      const proj = this.child(
        `proj_${level}`,
        new Linear(channels[stage]!, outChannels, rng, { weightInit: init.zeros(), biasInit: init.zeros() }),
      );
      this.outputs.push({ level, stage, proj });
    });
    const last = Math.max(-1, ...this.outputs.map((o) => o.stage));
    // A stage past the last one that feeds a level would get no gradient.
    if (last !== channels.length - 1) {
      throw new Error(
        `ConvStem: the last stage (stride ${2 ** channels.length}) must match a pyramid level stride (${levels.strides.join(', ')})`,
      );
    }
  }

  /** Largest stride any stage reaches; inputs must be a multiple of it. */
  get maxStride(): number {
    return 2 ** this.convs.length;
  }

  /** images [B, H, W, 3] (normalised) -> every stage's output, stage k at stride 2^(k+1). */
  stages(images: tf.Tensor4D): tf.Tensor4D[] {
    return tf.tidy(() => {
      const stages: tf.Tensor4D[] = [];
      let x = images;
      for (let k = 0; k < this.convs.length; k++) {
        x = gelu(this.norms[k]!.forward(this.convs[k]!.forward(x))) as tf.Tensor4D;
        for (const block of this.refine[k]?.items ?? []) x = block.forward(x);
        stages.push(x);
      }
      return stages;
    });
  }

  /** images [B, H, W, 3] (normalised) -> additions to pyramid levels, by level name. */
  forward(images: tf.Tensor4D): Record<string, tf.Tensor4D> {
    return tf.tidy(() => {
      const stages = this.stages(images);
      const out: Record<string, tf.Tensor4D> = {};
      for (const { level, stage, proj } of this.outputs) out[level] = proj.forward(stages[stage]!) as tf.Tensor4D;
      return out;
    });
  }
}
