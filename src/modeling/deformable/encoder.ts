import { tf } from '../../engine/engine.js';
import type { Rng } from '../../util/random.js';
import { Module } from '../module.js';
import { tidyKeep } from '../ops.js';
import { Ffn } from '../layers/ffn.js';
import { LayerNorm } from '../layers/layer-norm.js';
import { VisionLanguageFusion, type BiAttentionConfig } from '../fusion/bi-attention.js';
import { MultiScaleDeformableAttention, type SamplingFrame, type SpatialShapes } from './ms-deform-attn-module.js';

export interface DeformableLayerConfig {
  embedDim: number;
  numHeads: number;
  numLevels: number;
  numPoints: number;
  ffnDim: number;
}

/** Post-norm encoder layer: deformable self-attention, norm, FFN, norm (detrex BaseTransformerLayer). */
export class DeformableEncoderLayer extends Module {
  readonly attention: MultiScaleDeformableAttention;
  readonly ffn: Ffn;
  readonly norms: LayerNorm[];

  constructor(config: DeformableLayerConfig, rng: Rng) {
    super();
    const { embedDim, numHeads, numLevels, numPoints, ffnDim } = config;
    [this.attention] = this.childList('attentions', [new MultiScaleDeformableAttention(embedDim, numHeads, numLevels, numPoints, rng)]);
    [this.ffn] = this.childList('ffns', [new Ffn(embedDim, ffnDim, rng)]);
    this.norms = this.childList('norms', [new LayerNorm(embedDim, rng), new LayerNorm(embedDim, rng)]);
  }

  forward(query: tf.Tensor3D, pos: tf.Tensor3D, frame: SamplingFrame, shapes: SpatialShapes, keep: tf.Tensor3D | null): tf.Tensor3D {
    return tf.tidy(() => {
      let x = this.attention.forward({ query, queryPos: pos, valueKeep: keep, frame, spatialShapes: shapes });
      x = this.norms[0]!.forward(x) as tf.Tensor3D;
      return this.norms[1]!.forward(this.ffn.forward(x)) as tf.Tensor3D;
    });
  }
}

export interface EncoderText {
  /** [B, T, Dl] text tokens entering the first fusion. */
  tokens: tf.Tensor3D;
  /** Whether the fused text is used afterwards (sentences, word tokens) or discarded (the zero token). */
  keep: boolean;
}

/**
 * APE's DeformableDetrTransformerEncoderVL: before every encoder layer a vision-language fusion
 * block updates the visual tokens (and the text, when it is kept).
 */
export class DeformableEncoder extends Module {
  readonly layers: DeformableEncoderLayer[];
  readonly vlLayers: VisionLanguageFusion[];

  constructor(numLayers: number, config: DeformableLayerConfig, fusion: BiAttentionConfig | null, rng: Rng) {
    super();
    this.layers = this.childList('layers', Array.from({ length: numLayers }, () => new DeformableEncoderLayer(config, rng)));
    this.vlLayers = fusion ? this.childList('vl_layers', Array.from({ length: numLayers }, () => new VisionLanguageFusion(fusion, rng))) : [];
  }

  forward(
    query: tf.Tensor3D,
    pos: tf.Tensor3D,
    frame: SamplingFrame,
    shapes: SpatialShapes,
    keep: tf.Tensor3D | null,
    text: EncoderText | null,
    options: { training?: boolean; rng?: Rng } = {},
  ): { memory: tf.Tensor3D; text: tf.Tensor3D | null } {
    return tidyKeep(() => {
      let x = query;
      let l: tf.Tensor3D | null = text ? text.tokens : null;
      this.layers.forEach((layer, i) => {
        const fusion = this.vlLayers[i];
        if (fusion && text && l) {
          const fused = fusion.forward(x, l, { ...options, needLanguage: text.keep });
          x = fused.v;
          if (text.keep) l = fused.l;
        }
        x = layer.forward(x, pos, frame, shapes, keep);
      });
      return { memory: x, text: text?.keep ? l : null };
    });
  }
}
