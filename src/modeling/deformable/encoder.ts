import { tf } from '../../engine/engine.js';
import type { Rng } from '../../util/random.js';
import { Module } from '../../nn/module.js';
import { tidyKeep } from '../../nn/ops.js';
import { mapRowChunks, sliceRows } from '../row-chunks.js';
import { Ffn } from '../../nn/ffn.js';
import { LayerNorm } from '../../nn/layer-norm.js';
import { VisionLanguageFusion, type BiAttentionConfig } from '../fusion/bi-attention.js';
import {
  MultiScaleDeformableAttention,
  sliceSamplingFrame,
  type SamplingFrame,
  type SpatialShapes,
} from './ms-deform-attn-module.js';
import { required } from '../../util/checked.js';

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
    this.attention = new MultiScaleDeformableAttention(embedDim, numHeads, numLevels, numPoints, rng);
    this.childList('attentions', [this.attention]);
    this.ffn = new Ffn(embedDim, ffnDim, rng);
    this.childList('ffns', [this.ffn]);
    this.norms = this.childList('norms', [new LayerNorm(embedDim, rng), new LayerNorm(embedDim, rng)]);
  }

  /**
   * With chunkRows below the token count (inference), the value is projected once and the rest
   * of the layer (sampling, norms, FFN) runs chunkRows queries at a time: every step after the
   * value projection is per query, so the outputs are the same.
   */
  forward(
    query: tf.Tensor3D,
    pos: tf.Tensor3D,
    frame: SamplingFrame,
    shapes: SpatialShapes,
    keep: tf.Tensor3D | null,
    chunkRows = Infinity,
  ): tf.Tensor3D {
    const [b, s] = query.shape;
    const rest = (x: tf.Tensor3D): tf.Tensor3D => {
      const y = this.norms[0]!.forward(x) as tf.Tensor3D;
      return this.norms[1]!.forward(this.ffn.forward(y)) as tf.Tensor3D;
    };
    if (s <= chunkRows) {
      return tf.tidy(() =>
        rest(this.attention.forward({ query, queryPos: pos, valueKeep: keep, frame, spatialShapes: shapes })),
      );
    }
    const value = this.attention.projectValue(query, keep, chunkRows);
    const [out] = mapRowChunks(s, chunkRows, 1, (start, size) => {
      const part = sliceSamplingFrame(frame, b, s, start, size);
      return [
        rest(this.attention.attend(sliceRows(query, start, size), sliceRows(pos, start, size), value, part, shapes)),
      ];
    });
    value.dispose();
    return out as tf.Tensor3D;
  }
}

export interface EncoderText {
  /** [B, T, Dl] text tokens entering the first fusion. */
  tokens: tf.Tensor3D;
  /** Whether the fused text is used afterwards (sentences, word tokens) or discarded (the zero token). */
  keep: boolean;
  /** [T] 1 for a real token, 0 for padding (FusionRunOptions.textKeep); null when all are real. */
  mask?: tf.Tensor | null;
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
    this.layers = this.childList(
      'layers',
      Array.from({ length: numLayers }, () => new DeformableEncoderLayer(config, rng)),
    );
    this.vlLayers = fusion
      ? this.childList(
          'vl_layers',
          Array.from({ length: numLayers }, () => new VisionLanguageFusion(fusion, rng)),
        )
      : [];
  }

  forward(
    query: tf.Tensor3D,
    pos: tf.Tensor3D,
    frame: SamplingFrame,
    shapes: SpatialShapes,
    keep: tf.Tensor3D | null,
    text: EncoderText | null,
    options: { training?: boolean; rng?: Rng; chunkRows?: number } = {},
  ): { memory: tf.Tensor3D; text: tf.Tensor3D | null } {
    const chunkRows = options.training ? Infinity : (options.chunkRows ?? Infinity);
    return tidyKeep(() => {
      let x = query;
      let l: tf.Tensor3D | null = text ? text.tokens : null;
      // Inference frees each layer's input as soon as the next exists (training keeps them for
      // the backward pass); the caller's tensors are never freed here.
      const replace = <T extends tf.Tensor>(old: T, next: T, callers: T | null): T => {
        if (!options.training && old !== next && old !== callers) old.dispose();
        return next;
      };
      this.layers.forEach((layer, i) => {
        const fusion = this.vlLayers[i];
        if (fusion && text && l) {
          const fused = fusion.forward(x, l, { ...options, chunkRows, needLanguage: text.keep, textKeep: text.mask });
          x = replace(x, fused.v, query);
          if (text.keep) l = replace(l, required(fused.l, 'the fused language tokens'), text.tokens);
        }
        x = replace(x, layer.forward(x, pos, frame, shapes, keep, chunkRows), query);
      });
      return { memory: x, text: text?.keep ? l : null };
    });
  }
}
