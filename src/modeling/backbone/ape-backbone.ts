import { tf } from '../../engine/engine.js';
import type { Rng } from '../../util/random.js';
import { Module } from '../../nn/module.js';
import { Eva02Vit, type Eva02VitConfig } from './eva02-vit.js';
import { SimpleFeaturePyramid, type SimpleFeaturePyramidConfig } from './simple-feature-pyramid.js';
import { ConvStem, type ConvStemConfig } from './conv-stem.js';

/**
 * APE's backbone module: the ViT under `net` and the pyramid stages beside it (`simfp_2` ...),
 * as in the released state dict (`backbone.net.*`, `backbone.simfp_*`), and optionally a
 * convolutional stem (`backbone.stem.*`, not in APE) whose outputs are added to pyramid levels.
 */
export class ApeBackbone extends Module {
  readonly net: Eva02Vit;
  readonly pyramid: SimpleFeaturePyramid;
  readonly stem: ConvStem | null;

  constructor(vit: Eva02VitConfig, pyramid: SimpleFeaturePyramidConfig, rng: Rng, stem: ConvStemConfig | null = null) {
    super();
    if (pyramid.inChannels !== vit.embedDim)
      throw new Error(
        `ApeBackbone: pyramid inChannels ${pyramid.inChannels} differ from the ViT width ${vit.embedDim}`,
      );
    if (pyramid.inStride !== vit.patchSize)
      throw new Error(
        `ApeBackbone: pyramid inStride ${pyramid.inStride} differs from the ViT patch size ${vit.patchSize}`,
      );
    this.net = this.child('net', new Eva02Vit(vit, rng));
    this.pyramid = new SimpleFeaturePyramid(pyramid, rng);
    // The pyramid's stages are registered here, so their names sit beside `net`.
    for (const { stride, stage } of [...this.pyramid.stages, ...this.pyramid.maskOnlyStages])
      this.child(`simfp_${Math.log2(stride)}`, stage);
    // The stem feeds the mask-only levels too (a stride-4 stage gives the stride-4 mask feature its detail).
    const extra = this.pyramid.maskOnlyStages;
    const levels = {
      names: [...this.pyramid.featureNames, ...extra.map((s) => s.name)],
      strides: [...this.pyramid.strides, ...extra.map((s) => s.stride)],
    };
    this.stem = stem
      ? this.child('stem', new ConvStem(stem, levels, pyramid.outChannels, pyramid.layerNormEps, rng))
      : null;
  }

  get featureNames(): string[] {
    return this.pyramid.featureNames;
  }

  /**
   * images [B, H, W, 3] (normalised) -> pyramid levels by name, each [B, h, w, C]. `stem: false`
   * leaves the conv stem's additions out (pretraining's stem dropout: the pyramid alone then has to
   * meet the losses).
   */
  forward(
    images: tf.Tensor4D,
    options: { training?: boolean; rng?: Rng; stem?: boolean } = {},
  ): Record<string, tf.Tensor4D> {
    const last = this.net.forward(images, options);
    const out = this.pyramid.forward(last);
    last.dispose();
    if (!this.stem || options.stem === false) return out;
    const [, h, w] = images.shape;
    if (h % this.stem.maxStride !== 0 || w % this.stem.maxStride !== 0) {
      throw new Error(
        `ApeBackbone: the conv stem needs an input size that is a multiple of ${this.stem.maxStride}, got ${h}x${w}`,
      );
    }
    const added = this.stem.forward(images);
    for (const [level, extra] of Object.entries(added)) {
      const sum = tf.add(out[level]!, extra) as tf.Tensor4D;
      out[level]!.dispose();
      extra.dispose();
      out[level] = sum;
    }
    return out;
  }
}
