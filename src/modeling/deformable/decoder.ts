import { tf } from '../../engine/engine.js';
import type { Rng } from '../../util/random.js';
import { Module } from '../../nn/module.js';
import { Ffn } from '../../nn/ffn.js';
import { LayerNorm } from '../../nn/layer-norm.js';
import { Linear } from '../../nn/linear.js';
import { Mlp } from '../../nn/mlp.js';
import { DetrexMultiheadAttention } from '../../nn/multihead-attention.js';
import { detach, inverseSigmoid, tidyKeep } from '../../nn/ops.js';
import { MultiScaleDeformableAttention, boxSamplingFrame, type SpatialShapes } from './ms-deform-attn-module.js';
import type { DeformableLayerConfig } from './encoder.js';
import { dataInput } from '../../engine/graph-inputs.js';
import { GEOMETRY_INPUTS, validRatioScales } from '../feature-geometry.js';

/** Post-norm decoder layer: self-attention, norm, deformable cross-attention, norm, FFN, norm. */
export class DeformableDecoderLayer extends Module {
  readonly selfAttention: DetrexMultiheadAttention;
  readonly crossAttention: MultiScaleDeformableAttention;
  readonly ffn: Ffn;
  readonly norms: LayerNorm[];

  constructor(config: DeformableLayerConfig, rng: Rng) {
    super();
    const { embedDim, numHeads, numLevels, numPoints, ffnDim } = config;
    [this.selfAttention, this.crossAttention] = this.childList<Module>('attentions', [
      new DetrexMultiheadAttention(embedDim, numHeads, rng),
      new MultiScaleDeformableAttention(embedDim, numHeads, numLevels, numPoints, rng),
    ]) as [DetrexMultiheadAttention, MultiScaleDeformableAttention];
    this.ffn = new Ffn(embedDim, ffnDim, rng);
    this.childList('ffns', [this.ffn]);
    this.norms = this.childList('norms', [
      new LayerNorm(embedDim, rng),
      new LayerNorm(embedDim, rng),
      new LayerNorm(embedDim, rng),
    ]);
  }

  forward(
    query: tf.Tensor3D,
    pos: tf.Tensor3D,
    memory: tf.Tensor3D,
    keep: tf.Tensor3D | null,
    frame: ReturnType<typeof boxSamplingFrame>,
    shapes: SpatialShapes,
    chunkRows = Infinity,
    selfAttentionBias: tf.Tensor3D | null = null,
  ): tf.Tensor3D {
    return tf.tidy(() => {
      let x = this.norms[0]!.forward(this.selfAttention.forward(query, pos, selfAttentionBias)) as tf.Tensor3D;
      x = this.norms[1]!.forward(
        this.crossAttention.forward({
          query: x,
          queryPos: pos,
          value: memory,
          valueKeep: keep,
          frame,
          spatialShapes: shapes,
          chunkRows,
        }),
      ) as tf.Tensor3D;
      return this.norms[2]!.forward(this.ffn.forward(x)) as tf.Tensor3D;
    });
  }
}

export interface DecoderOutput {
  /** Per layer: query features [B, Q, E]. */
  hidden: tf.Tensor3D[];
  /** Per layer: refined boxes sigmoid(bbox_embed(h) + inverse_sigmoid(reference)), cxcywh [B, Q, 4]. */
  boxes: tf.Tensor3D[];
  /** Per layer: the (detached) reference boxes the layer started from, host copy [B, Q, 4]. */
  references: Float32Array[];
}

/**
 * DeformableDetrTransformerDecoderVL with iterative box refinement: each layer samples around
 * its reference boxes (scaled by the valid ratios) and refines them with its own box head; the
 * next layer starts from the refined boxes without gradient.
 */
export class DeformableDecoder extends Module {
  readonly layers: DeformableDecoderLayer[];
  /** Extra proposal heads (APE's proposal_ambiguous), owned here as in the reference. */
  readonly classEmbedAmbiguous: Linear[];
  readonly bboxEmbedAmbiguous: Mlp[];

  constructor(numLayers: number, config: DeformableLayerConfig, proposalAmbiguous: number, rng: Rng) {
    super();
    this.layers = this.childList(
      'layers',
      Array.from({ length: numLayers }, () => new DeformableDecoderLayer(config, rng)),
    );
    const prior = -Math.log(99);
    this.bboxEmbedAmbiguous =
      proposalAmbiguous > 0
        ? this.childList(
            'bbox_embed_ambiguous',
            Array.from(
              { length: proposalAmbiguous },
              () => new Mlp(config.embedDim, config.embedDim, 4, 3, rng, { zeroLast: true }),
            ),
          )
        : [];
    this.classEmbedAmbiguous =
      proposalAmbiguous > 0
        ? this.childList(
            'class_embed_ambiguous',
            Array.from(
              { length: proposalAmbiguous },
              () => new Linear(config.embedDim, 1, rng, { biasInit: () => tf.fill([1], prior) }),
            ),
          )
        : [];
  }

  /**
   * initialReference: [B, Q, 4] cxcywh boxes without gradient (not disposed here).
   * selfAttentionBias: [B, Q, Q] added to the self-attention scores of every layer (training's
   * denoising queries hide themselves from the others), or null.
   */
  forward(
    query: tf.Tensor3D,
    pos: tf.Tensor3D,
    memory: tf.Tensor3D,
    keep: tf.Tensor3D | null,
    initialReference: tf.Tensor3D,
    validRatios: Float32Array,
    shapes: SpatialShapes,
    bboxEmbed: Mlp[],
    chunkRows = Infinity,
    selfAttentionBias: tf.Tensor3D | null = null,
  ): DecoderOutput {
    const [b] = query.shape;
    const levels = shapes.length;
    const numPoints = this.layers[0]?.crossAttention.numPoints ?? 4;
    const hidden: tf.Tensor3D[] = [];
    const boxes: tf.Tensor3D[] = [];
    const references: Float32Array[] = [];
    // (w, h, w, h) of each level's valid ratios, [B, 1, L, 4].
    const ratios = dataInput(GEOMETRY_INPUTS.validRatios, validRatioScales(validRatios, b, levels), [b, 1, levels, 4]);
    let x = query;
    let reference = initialReference;
    this.layers.forEach((layer, i) => {
      const frame = tidyKeep(() =>
        boxSamplingFrame(tf.mul(tf.expandDims(reference, 2), ratios) as tf.Tensor4D, numPoints),
      );
      const next = layer.forward(x, pos, memory, keep, frame, shapes, chunkRows, selfAttentionBias);
      frame.base.dispose();
      frame.scale.dispose();
      const refined = tf.tidy(
        () => tf.sigmoid(tf.add(bboxEmbed[i]!.forward(next), inverseSigmoid(reference))) as tf.Tensor3D,
      );
      hidden.push(next);
      boxes.push(refined);
      references.push(Float32Array.from(reference.dataSync()));
      if (reference !== initialReference) reference.dispose();
      // The next layer starts from the refined boxes without gradient.
      reference = detach(refined);
      x = next;
    });
    if (reference !== initialReference) reference.dispose();
    ratios.dispose();
    return { hidden, boxes, references };
  }
}

/** reference [B, Q, 4] -> [B, Q, L, 4], each level's copy scaled by that level's valid ratios (w, h, w, h). */
export function scaleReferences(
  reference: Float32Array,
  validRatios: Float32Array,
  batch: number,
  queries: number,
  levels: number,
): Float32Array {
  const out = new Float32Array(batch * queries * levels * 4);
  for (let b = 0; b < batch; b++) {
    for (let q = 0; q < queries; q++) {
      const r = (b * queries + q) * 4;
      for (let l = 0; l < levels; l++) {
        const rw = validRatios[(b * levels + l) * 2]!;
        const rh = validRatios[(b * levels + l) * 2 + 1]!;
        const o = ((b * queries + q) * levels + l) * 4;
        out[o] = Math.fround(reference[r]! * rw);
        out[o + 1] = Math.fround(reference[r + 1]! * rh);
        out[o + 2] = Math.fround(reference[r + 2]! * rw);
        out[o + 3] = Math.fround(reference[r + 3]! * rh);
      }
    }
  }
  return out;
}
