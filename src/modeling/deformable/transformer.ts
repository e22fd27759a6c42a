import { tf } from '../../engine/engine.js';
import type { Rng } from '../../util/random.js';
import { Module, init } from '../../nn/module.js';
import { LayerNorm } from '../../nn/layer-norm.js';
import { Linear } from '../../nn/linear.js';
import type { Mlp } from '../../nn/mlp.js';
import type { BiAttentionConfig } from '../fusion/bi-attention.js';
import { detach, inverseSigmoid } from '../../nn/ops.js';
import { mapRowChunks, sliceRows } from '../row-chunks.js';
import {
  encoderReferencePoints,
  GEOMETRY_INPUTS,
  levelPositionEmbeddings,
  proposalAnchors,
  tokenKeepMask,
  type LevelGeometry,
  type ProposalAnchors,
} from '../feature-geometry.js';
import { proposalPositionEmbedding } from '../position-encoding.js';
import { selectQueries, type ProposalSelectionConfig } from '../proposals.js';
import { dataInput, hostInput, keepMaskInput } from '../../engine/graph-inputs.js';
import { DeformableEncoder, type DeformableLayerConfig, type EncoderText } from './encoder.js';
import { DeformableDecoder, type DecoderOutput } from './decoder.js';
import { pointSamplingFrame } from './ms-deform-attn-module.js';

export interface DeformableTransformerConfig extends DeformableLayerConfig {
  encoderLayers: number;
  decoderLayers: number;
  proposals: ProposalSelectionConfig;
  /** Extra encoder proposal heads whose best score wins per token (APE-D: 1). */
  proposalAmbiguous: number;
}

/** The heads the transformer borrows from the model (class_embed.N / bbox_embed.N in the reference). */
export interface TransformerHeads {
  /** Box MLP per decoder layer, then one for the encoder proposals. */
  bboxEmbed: Mlp[];
  /** Objectness of the encoder proposals (class_embed[numDecoderLayers]). */
  proposalClass: Linear;
}

export interface EncoderProposals {
  /** [B, S, 1] objectness logits of every token's proposal. */
  logits: tf.Tensor3D;
  /** [B, S, 4] proposal boxes, cxcywh in [0, 1] (1 where the anchor is unusable). */
  boxes: tf.Tensor3D;
  /** Anchors (cxcywh in [0, 1]), their validity and levels, on the host. */
  anchors: ProposalAnchors;
  /** Per image, the token indices chosen as decoder queries. */
  selected: Int32Array[];
}

/**
 * Training only: extra decoder queries placed before the proposals' (DINO's contrastive
 * denoising), each built like a proposal query from its box, plus `content`.
 */
export interface DenoisingQueries {
  /** [B, D, 4] cxcywh in [0, 1] of each image's valid region: their first reference boxes. */
  boxes: tf.Tensor3D;
  /** [B, D, E] added to each query's content (its label's vector; zero for none). */
  content: tf.Tensor3D;
  /** [B, D + Q, D + Q] added to every decoder layer's self-attention scores (a large negative hides a key). */
  attentionBias: tf.Tensor3D;
}

export interface TransformerRunOptions {
  /** Training-only denoising queries; the decoder outputs then hold them first, then the Q proposal queries. */
  denoising?: DenoisingQueries | null;
  training?: boolean;
  rng?: Rng;
  /** Inference: tokens per chunk for token-wise work over the encoder's tokens (default: all at once). */
  chunkRows?: number;
  /** Called when the encoder (with its proposals and their selection) and then the decoder are done. */
  onPhase?: (phase: 'encoder' | 'decoder') => void;
}

export interface TransformerOutput extends DecoderOutput {
  /** [B, S, E] encoder output. */
  memory: tf.Tensor3D;
  /** Fused text tokens when they were kept, else null. */
  text: tf.Tensor3D | null;
  encoder: EncoderProposals;
}

/** The two-stage heads' outputs over every encoder token (DeformableTransformer.encoderProposals). */
export interface EncoderProposalHeads {
  /** [B, S, E] enc_output_norm(enc_output(memory)), the source of the queries' content. */
  outputMemory: tf.Tensor3D;
  /** [B, S, 1] objectness logits. */
  logits: tf.Tensor3D;
  /** [B, S, 4] proposal boxes (cxcywh) before the sigmoid; +Infinity where the anchor is unusable. */
  coordsUnact: tf.Tensor3D;
  anchors: ProposalAnchors;
}

/** What the decoder starts from (DeformableTransformer.decoderQueries). */
export interface DecoderQueries {
  /** Per image, the picked token indices in order. */
  selected: Int32Array[];
  /** [B, Q, 4] the picked proposal boxes before the sigmoid. */
  topCoords: tf.Tensor3D;
  /** [B, Q, 4] their sigmoid: the first reference boxes. */
  reference: tf.Tensor3D;
  query: tf.Tensor3D;
  queryPos: tf.Tensor3D;
}

/** APE's DeformableDetrTransformerVL, two-stage (DETA variant with pixel-feature query init). */
export class DeformableTransformer extends Module {
  readonly levelEmbeds: tf.Variable;
  readonly encoder: DeformableEncoder;
  readonly decoder: DeformableDecoder;
  readonly encOutput: Linear;
  readonly encOutputNorm: LayerNorm;
  readonly posTrans: Linear;
  readonly posTransNorm: LayerNorm;
  readonly pixTrans: Linear;
  readonly pixTransNorm: LayerNorm;

  constructor(
    readonly config: DeformableTransformerConfig,
    fusion: BiAttentionConfig | null,
    rng: Rng,
  ) {
    super();
    const e = config.embedDim;
    const xavier = { weightInit: init.xavierUniform() };
    this.levelEmbeds = this.param('level_embeds', [config.numLevels, e], init.normal(1), rng);
    this.encoder = this.child('encoder', new DeformableEncoder(config.encoderLayers, config, fusion, rng));
    this.decoder = this.child(
      'decoder',
      new DeformableDecoder(config.decoderLayers, config, config.proposalAmbiguous, rng),
    );
    this.encOutput = this.child('enc_output', new Linear(e, e, rng, xavier));
    this.encOutputNorm = this.child('enc_output_norm', new LayerNorm(e, rng));
    this.posTrans = this.child('pos_trans', new Linear(2 * e, 2 * e, rng, xavier));
    this.posTransNorm = this.child('pos_trans_norm', new LayerNorm(2 * e, rng));
    this.pixTrans = this.child('pix_trans', new Linear(e, e, rng, xavier));
    this.pixTransNorm = this.child('pix_trans_norm', new LayerNorm(e, rng));
  }

  /** feats: per level [B, h, w, E] (NHWC, after the neck). */
  forward(
    feats: tf.Tensor4D[],
    geometry: LevelGeometry,
    text: EncoderText | null,
    heads: TransformerHeads,
    options: TransformerRunOptions = {},
  ): TransformerOutput {
    const b = geometry.batch;
    const s = geometry.total;
    const shapes = geometry.shapes;
    const levels = shapes.length;
    if (levels !== this.config.numLevels)
      throw new Error(`DeformableTransformer: ${levels} feature levels, built for ${this.config.numLevels}`);

    const keep = keepMaskInput(GEOMETRY_INPUTS.tokenKeep, tokenKeepMask(geometry), [b, s, 1]) as tf.Tensor3D | null;
    const frame = pointSamplingFrame(
      encoderReferencePoints(geometry),
      b,
      s,
      shapes,
      this.config.numPoints,
      GEOMETRY_INPUTS.encoderReference,
    );

    const chunkRows = options.training ? Infinity : (options.chunkRows ?? Infinity);
    const { source, pos } = this.encoderInput(feats, geometry);
    const { memory, text: fusedText } = this.encoder.forward(source, pos, frame, shapes, keep, text, {
      training: options.training,
      rng: options.rng,
      chunkRows,
    });
    tf.dispose([source, pos]);
    frame.base.dispose();
    frame.scale.dispose();

    const { outputMemory, logits, coordsUnact, anchors } = this.encoderProposals(memory, geometry, heads, chunkRows);
    const { selected, query, queryPos, topCoords, reference } = this.decoderQueries(
      outputMemory,
      logits,
      coordsUnact,
      anchors,
      geometry,
    );
    tf.dispose([outputMemory, topCoords]);
    options.onPhase?.('encoder');

    const start = options.denoising
      ? this.withDenoisingQueries({ query, queryPos, reference }, options.denoising)
      : null;
    if (start) tf.dispose([query, queryPos, reference]);
    const decoded = this.decoder.forward(
      start?.query ?? query,
      start?.queryPos ?? queryPos,
      memory,
      keep,
      start?.reference ?? reference,
      geometry.validRatios,
      shapes,
      heads.bboxEmbed,
      chunkRows,
      options.denoising?.attentionBias ?? null,
    );
    tf.dispose(start ? [start.query, start.queryPos, start.reference] : [query, queryPos, reference]);
    keep?.dispose();
    const boxes = tf.tidy(() => tf.sigmoid(coordsUnact)) as tf.Tensor3D;
    coordsUnact.dispose();
    options.onPhase?.('decoder');
    return {
      ...decoded,
      memory,
      text: fusedText,
      encoder: { logits, boxes, anchors, selected },
    };
  }

  /**
   * The encoder's input: every level's tokens flattened into one sequence [B, S, E], and their
   * position embedding [B, S, E] (each level's sine embedding of its padding mask plus that
   * level's learned embedding).
   */
  encoderInput(feats: tf.Tensor4D[], geometry: LevelGeometry): { source: tf.Tensor3D; pos: tf.Tensor3D } {
    const e = this.config.embedDim;
    const { batch: b, total: s, shapes } = geometry;
    const levels = shapes.length;
    const source = tf.tidy(
      () =>
        tf.concat(
          feats.map((f) => tf.reshape(f, [b, f.shape[1] * f.shape[2], e])),
          1,
        ) as tf.Tensor3D,
    );
    const pos = tf.tidy(() => {
      const levelOneHot = new Float32Array(s * levels);
      shapes.forEach(([h, w], l) => {
        for (let i = 0; i < h * w; i++) levelOneHot[(geometry.levelStart[l]! + i) * levels + l] = 1;
      });
      const sine = dataInput(GEOMETRY_INPUTS.positionEmbedding, levelPositionEmbeddings(geometry, e), [b, s, e]);
      const levelPos = tf.matMul(tf.tensor2d(levelOneHot, [s, levels]), this.levelEmbeds); // [S, E]
      return tf.add(sine, levelPos) as tf.Tensor3D;
    });
    return { source, pos };
  }

  /**
   * The two-stage heads over every token of the encoder output: the projected memory the
   * queries start from ([B, S, E], zero rows at padded or unusable anchors before the projection),
   * its objectness logits [B, S, 1] and its proposal boxes before the sigmoid [B, S, 4]
   * (box delta + anchor; +Infinity where the anchor is unusable).
   */
  encoderProposals(
    memory: tf.Tensor3D,
    geometry: LevelGeometry,
    heads: TransformerHeads,
    chunkRows = Infinity,
  ): EncoderProposalHeads {
    const { batch: b, total: s } = geometry;
    const anchors = proposalAnchors(geometry);
    const validTensor = keepMaskInput(GEOMETRY_INPUTS.anchorKeep, Float32Array.from(anchors.valid), [
      b,
      s,
      1,
    ]) as tf.Tensor3D | null;
    const unactTensor = dataInput(GEOMETRY_INPUTS.anchorUnact, anchors.unact, [b, s, 4]) as tf.Tensor3D;
    // Per token: the projected memory the queries start from, its objectness and proposal box.
    const proposalHeads = (mem: tf.Tensor3D, valid: tf.Tensor3D | null, unact: tf.Tensor3D): tf.Tensor[] => {
      const outputMemory = this.encOutputNorm.forward(
        this.encOutput.forward(valid ? tf.mul(mem, valid) : mem),
      ) as tf.Tensor3D;
      let logits = heads.proposalClass.forward(outputMemory) as tf.Tensor3D;
      let delta = heads.bboxEmbed[this.config.decoderLayers]!.forward(outputMemory);
      this.decoder.classEmbedAmbiguous.forEach((extraClass, k) => {
        // The best-scoring head wins per token (argmax, first one on ties).
        const extra = extraClass.forward(outputMemory);
        const wins = tf.cast(tf.greater(detach(extra), detach(logits)), 'float32');
        const loses = tf.sub(1, wins);
        logits = tf.add(tf.mul(extra, wins), tf.mul(logits, loses)) as tf.Tensor3D;
        delta = tf.add(tf.mul(this.decoder.bboxEmbedAmbiguous[k]!.forward(outputMemory), wins), tf.mul(delta, loses));
      });
      return [outputMemory, logits, tf.add(delta, unact)];
    };
    const [outputMemory, logits, coordsUnact] = mapRowChunks(s, chunkRows, 1, (start, size) =>
      s <= chunkRows
        ? proposalHeads(memory, validTensor, unactTensor)
        : proposalHeads(
            sliceRows(memory, start, size),
            validTensor ? sliceRows(validTensor, start, size) : null,
            sliceRows(unactTensor, start, size),
          ),
    ) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
    validTensor?.dispose();
    unactTensor.dispose();
    return { outputMemory, logits, coordsUnact, anchors };
  }

  /**
   * The proposal queries with the denoising queries before them: each denoising box is embedded
   * as decoderQueries embeds a proposal's (pos_trans of the sine embedding of the box before the
   * sigmoid, split into position and content), and its content gets `content` where a proposal's
   * gets its picked memory row. The boxes are constants (no gradient), as the proposals' are.
   */
  withDenoisingQueries(
    queries: Pick<DecoderQueries, 'query' | 'queryPos' | 'reference'>,
    denoising: Pick<DenoisingQueries, 'boxes' | 'content'>,
  ): Pick<DecoderQueries, 'query' | 'queryPos' | 'reference'> {
    return tf.tidy(() => {
      const e = this.config.embedDim;
      const unact = inverseSigmoid(detach(denoising.boxes));
      const trans = this.posTransNorm.forward(this.posTrans.forward(proposalPositionEmbedding(unact, e / 2)));
      const [pos, base] = tf.split(trans, 2, 2) as [tf.Tensor3D, tf.Tensor3D];
      return {
        query: tf.concat([tf.add(base, denoising.content), queries.query], 1) as tf.Tensor3D,
        queryPos: tf.concat([pos, queries.queryPos], 1) as tf.Tensor3D,
        reference: tf.concat([tf.sigmoid(unact), queries.reference], 1) as tf.Tensor3D,
      };
    });
  }

  /**
   * Picks each image's decoder queries among the proposals (selectQueries, on the host) and builds
   * what the decoder starts from: the picked proposals' boxes before the sigmoid ([B, Q, 4]) and
   * after it (the first reference boxes), the query position (the first half of pos_trans of their
   * sine embedding) and the query (its second half plus pix_trans of the picked projected memory).
   * Everything after the host selection is tensor arithmetic on the picked rows, so that a
   * recorded graph takes the picks as its one host input.
   */
  decoderQueries(
    outputMemory: tf.Tensor3D,
    logits: tf.Tensor3D,
    coordsUnact: tf.Tensor3D,
    anchors: ProposalAnchors,
    geometry: LevelGeometry,
  ): DecoderQueries {
    const e = this.config.embedDim;
    const { batch: b, total: s } = geometry;
    const levels = geometry.shapes.length;
    const q = this.config.proposals.numQueries;
    const { selected, flatIndex } = selectQueries(
      logits.dataSync(),
      coordsUnact.dataSync(),
      anchors.levelIds,
      b,
      levels,
      this.config.proposals,
    );
    const index = hostInput('query_index', tf.tensor1d(flatIndex, 'int32'));
    const topCoords = tf.tidy(
      () => detach(tf.reshape(tf.gather(tf.reshape(coordsUnact, [b * s, 4]), index), [b, q, 4])) as tf.Tensor3D,
    );
    const { query, queryPos, reference } = tf.tidy(() => {
      const posEmbed = proposalPositionEmbedding(topCoords, e / 2);
      const trans = this.posTransNorm.forward(this.posTrans.forward(posEmbed));
      const [queryPos, queryBase] = tf.split(trans, 2, 2) as [tf.Tensor3D, tf.Tensor3D];
      const picked = detach(tf.gather(tf.reshape(outputMemory, [b * s, e]), index));
      const query = tf.add(
        queryBase,
        this.pixTransNorm.forward(this.pixTrans.forward(tf.reshape(picked, [b, q, e]))),
      ) as tf.Tensor3D;
      return { query, queryPos, reference: tf.sigmoid(topCoords) as tf.Tensor3D };
    });
    index.dispose();
    return { selected, topCoords, reference, query, queryPos };
  }
}
