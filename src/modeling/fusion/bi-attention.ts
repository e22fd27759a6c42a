import { tf } from '../../engine/engine.js';
import type { Rng } from '../../util/random.js';
import { Module, init } from '../../nn/module.js';
import { Linear } from '../../nn/linear.js';
import { LayerNorm } from '../../nn/layer-norm.js';
import { mergeHeads, splitHeads, subtractMax, tidyKeep } from '../../nn/ops.js';
import { mapRowChunks, mapRows, sliceRows } from '../row-chunks.js';
import { required } from '../../util/checked.js';

export interface BiAttentionConfig {
  /** Visual token width. */
  vDim: number;
  /** Text token width. */
  lDim: number;
  /** Inner attention width (split over heads). */
  embedDim: number;
  numHeads: number;
  /** Dropout on both attention maps, training only. */
  dropout: number;
  /** Initial value of the per-channel output gammas. */
  initValues: number;
  /** Subtract the max over the whole attention tensor (all batches and heads) before the clamps. */
  stableSoftmax2d: boolean;
  clampMinForUnderflow: boolean;
  clampMaxForOverflow: boolean;
}

export interface FusionRunOptions {
  training?: boolean;
  rng?: Rng;
  /** Compute the text-side output (false when it is discarded, as for the zero token). */
  needLanguage?: boolean;
  /**
   * Inference path for large attention maps (one head at a time); chosen automatically when the
   * map would exceed 4M values, forced with true (tests).
   */
  perHead?: boolean;
  /**
   * Inference path for few text tokens (forwardFactored): the text-side factors are multiplied
   * into the weights first, so no inner-width tensor over the visual tokens is made. Chosen
   * automatically when heads * Nl < embedDim (it is then the cheaper order) and the map has at
   * most 16M values; true or false forces it (tests).
   */
  factored?: boolean;
  /**
   * Inference: visual tokens per chunk for the inner-width projections (the attention map itself
   * stays whole; maps too large for that take the per-head path). Default: all at once.
   */
  chunkRows?: number;
  /**
   * [T]: 1 for each real text token, 0 for padding (the rows that fill a sentence-count bucket).
   * The visual tokens give padding no attention and the stable softmax's global max leaves it out
   * (APE masks the vision side the same way, attention_mask_l, but takes the max over every
   * token), so padding changes neither the image side nor the real tokens; padded tokens' own
   * outputs mean nothing. Null or absent: every token is real.
   */
  textKeep?: tf.Tensor | null;
}

const CLAMP = 50000;
/** The logit padding gets: exp of it minus any real logit is exactly 0 in float32. */
const PADDING_LOGIT = -1e30;

/** [1, 1, T]: 0 for a real text token, PADDING_LOGIT for padding (added to logits over the text tokens). */
function paddingBias(keep: tf.Tensor): tf.Tensor {
  return tf.reshape(tf.mul(tf.sub(keep, 1), -PADDING_LOGIT), [1, 1, keep.size]);
}

/** GLIP's BiMultiHeadAttention: one attention map read in both directions. */
export class BiMultiHeadAttention extends Module {
  readonly vProj: Linear;
  readonly lProj: Linear;
  readonly valuesVProj: Linear;
  readonly valuesLProj: Linear;
  readonly outVProj: Linear;
  readonly outLProj: Linear;
  readonly headDim: number;

  constructor(
    readonly config: BiAttentionConfig,
    rng: Rng,
  ) {
    super();
    const { vDim, lDim, embedDim, numHeads } = config;
    if (embedDim % numHeads !== 0)
      throw new Error(`BiMultiHeadAttention: embedDim ${embedDim} is not divisible by ${numHeads} heads`);
    this.headDim = embedDim / numHeads;
    const xavier = { weightInit: init.xavierUniform(), biasInit: init.zeros() };
    this.vProj = this.child('v_proj', new Linear(vDim, embedDim, rng, xavier));
    this.lProj = this.child('l_proj', new Linear(lDim, embedDim, rng, xavier));
    this.valuesVProj = this.child('values_v_proj', new Linear(vDim, embedDim, rng, xavier));
    this.valuesLProj = this.child('values_l_proj', new Linear(lDim, embedDim, rng, xavier));
    this.outVProj = this.child('out_v_proj', new Linear(embedDim, vDim, rng, xavier));
    this.outLProj = this.child('out_l_proj', new Linear(embedDim, lDim, rng, xavier));
  }

  private clamp(x: tf.Tensor): tf.Tensor {
    const { clampMinForUnderflow: lo, clampMaxForOverflow: hi } = this.config;
    if (lo && hi) return tf.clipByValue(x, -CLAMP, CLAMP);
    if (lo) return tf.maximum(x, -CLAMP);
    if (hi) return tf.minimum(x, CLAMP);
    return x;
  }

  private dropout(x: tf.Tensor, options: FusionRunOptions): tf.Tensor {
    const rate = this.config.dropout;
    if (!options.training || rate <= 0) return x;
    if (!options.rng) throw new Error('BiMultiHeadAttention: training with dropout needs options.rng');
    return tf.dropout(x, rate, undefined, options.rng.seed());
  }

  /**
   * v [B, Nv, vDim], l [B, Nl, lDim] (both already layer-normed) -> deltas for both sides
   * (language delta null when not needed). With a single text token and no language output the
   * vision delta is [B, 1, vDim], the same for every pixel.
   */
  forward(
    v: tf.Tensor3D,
    l: tf.Tensor3D,
    options: FusionRunOptions = {},
  ): { deltaV: tf.Tensor3D; deltaL: tf.Tensor3D | null } {
    const needLanguage = options.needLanguage ?? true;
    const [b, nv] = v.shape;
    const nl = l.shape[1];
    const heads = this.config.numHeads;
    const dropoutActive = !!options.training && this.config.dropout > 0;
    // With one text token the vision-side softmax is exactly 1: the vision delta is that token's
    // value for every pixel, and the vision-side projections drop out.
    if (nl === 1 && !dropoutActive && !needLanguage && !options.textKeep) {
      return tidyKeep(() => {
        // [B, 1, vDim]: broadcast over the pixels by the caller's add.
        const deltaV = this.outVProj.forward(this.valuesLProj.forward(l)) as tf.Tensor3D;
        return { deltaV, deltaL: null };
      });
    }
    const factored =
      !options.training &&
      options.perHead !== true &&
      (options.factored ?? (heads * nl < this.config.embedDim && b * heads * nv * nl <= 1 << 24));
    const keep = options.textKeep ?? null;
    if (factored) return this.forwardFactored(v, l, needLanguage, keep);
    const large = !options.training && (options.perHead ?? b * heads * nv * nl > 1 << 22);
    if (large) return this.forwardPerHead(v, l, needLanguage, keep);
    const chunkRows = options.training ? Infinity : (options.chunkRows ?? Infinity);
    return nv > chunkRows
      ? this.forwardChunked(v, l, needLanguage, chunkRows, keep)
      : this.forwardBatched(v, l, options, needLanguage, keep);
  }

  private forwardBatched(
    v: tf.Tensor3D,
    l: tf.Tensor3D,
    options: FusionRunOptions,
    needLanguage: boolean,
    keep: tf.Tensor | null,
  ): { deltaV: tf.Tensor3D; deltaL: tf.Tensor3D | null } {
    return tidyKeep(() => {
      const b = v.shape[0];
      const heads = this.config.numHeads;
      const bias = keep ? paddingBias(keep) : null;
      const q = splitHeads(tf.mul(this.vProj.forward(v), this.headDim ** -0.5), heads);
      const k = splitHeads(this.lProj.forward(l), heads);
      const valueV = splitHeads(this.valuesVProj.forward(v), heads);
      const valueL = splitHeads(this.valuesLProj.forward(l), heads);
      let attn: tf.Tensor = tf.matMul(q, k, false, true); // [B*H, Nv, Nl]
      if (this.config.stableSoftmax2d) attn = subtractMax(attn, undefined, bias);
      attn = this.clamp(attn);
      const probsV = this.dropout(tf.softmax(bias ? tf.add(attn, bias) : attn), options);
      const deltaV = this.outVProj.forward(mergeHeads(tf.matMul(probsV, valueL), b, heads)) as tf.Tensor3D;
      if (!needLanguage) return { deltaV, deltaL: null };
      let attnL: tf.Tensor = tf.transpose(attn, [0, 2, 1]);
      attnL = this.clamp(subtractMax(attnL, -1));
      const probsL = this.dropout(tf.softmax(attnL), options);
      const deltaL = this.outLProj.forward(mergeHeads(tf.matMul(probsL, valueV), b, heads)) as tf.Tensor3D;
      return { deltaV, deltaL };
    });
  }

  /**
   * forwardBatched reassociated for inference with few text tokens. Each product over the inner
   * width is taken on the text side first (per head h, with Wq_h, Wv_h the head's columns and
   * Wo_h its rows of out_v_proj):
   *   map_h   = v (s Wq_h k_h^T) + s bq_h k_h^T                 (no [Nv, embedDim] queries)
   *   deltaV  = sum_h softmax_Nl(map_h) (valueL_h Wo_h) + bo    (no [Nv, embedDim] attended output)
   *   deltaL_h = (softmax_Nv(map_h^T) v) Wv_h + bv_h            (no [Nv, embedDim] visual values;
   *                                                              softmax rows sum to 1)
   * The visual tokens then meet only [vDim, heads * Nl] and [heads * Nl, vDim] matrices: for one
   * sentence and 8 heads, 3 x 2 x Nv x vDim x 8 FLOPs instead of 3 x 2 x Nv x vDim x embedDim
   * (at 1024 x 1024 input, ~1 GFLOP per fusion block instead of ~275). Same numbers as
   * forwardBatched up to float rounding.
   */
  private forwardFactored(
    v: tf.Tensor3D,
    l: tf.Tensor3D,
    needLanguage: boolean,
    keep: tf.Tensor | null,
  ): { deltaV: tf.Tensor3D; deltaL: tf.Tensor3D | null } {
    return tidyKeep(() => {
      const [b, nv, vDim] = v.shape;
      const nl = l.shape[1];
      const heads = this.config.numHeads;
      const d = this.headDim;
      const hl = heads * nl;
      // A linear layer's weight as per-head blocks: columns [in, H*d] -> [H, in, d], rows [H*d, out] -> [H, d, out].
      const columnsByHead = (layer: Linear) =>
        tf.transpose(tf.reshape(layer.weight, [layer.inDim, heads, d]), [1, 0, 2]) as tf.Tensor3D;
      const rowsByHead = (layer: Linear) => tf.reshape(layer.weight, [heads, d, layer.outDim]) as tf.Tensor3D;
      // Text-side tensors [B, Nl, H*d] -> [H, B*Nl, d].
      const byHead = (x: tf.Tensor) =>
        tf.reshape(tf.transpose(tf.reshape(x, [b, nl, heads, d]), [2, 0, 1, 3]), [heads, b * nl, d]) as tf.Tensor3D;
      // [H, B*Nl, c] -> [B, H*Nl, c]: the heads' text rows side by side.
      const headRows = (x: tf.Tensor, c: number) =>
        tf.reshape(tf.transpose(tf.reshape(x, [heads, b, nl, c]), [1, 0, 2, 3]), [b, hl, c]) as tf.Tensor3D;
      const scale = d ** -0.5;
      const k = byHead(this.lProj.forward(l)); // [H, B*Nl, d]
      // s Wq_h k_h^T for every batch item: [H, vDim, B*Nl] -> [B, vDim, H*Nl].
      const qk = tf.matMul(columnsByHead(this.vProj), k, false, true);
      const factor = tf.mul(
        tf.reshape(tf.transpose(tf.reshape(qk, [heads, vDim, b, nl]), [2, 1, 0, 3]), [b, vDim, hl]),
        scale,
      );
      // s bq_h k_h^T: [H, B*Nl] -> [B, 1, H*Nl].
      const bq = tf.reshape(required(this.vProj.bias, 'the bias of v_proj'), [heads, 1, d]);
      const offset = tf.mul(headRows(tf.sum(tf.mul(k, bq), -1, true), 1), scale);
      let attn: tf.Tensor = tf.reshape(tf.add(tf.matMul(v, factor), tf.reshape(offset, [b, 1, hl])), [
        b,
        nv,
        heads,
        nl,
      ]);
      // [1, 1, 1, Nl]: the padding bias over the text tokens of every head.
      const bias = keep ? tf.reshape(paddingBias(keep), [1, 1, 1, nl]) : null;
      if (this.config.stableSoftmax2d) attn = subtractMax(attn, undefined, bias);
      attn = this.clamp(attn);
      const probsV = tf.reshape(tf.softmax(bias ? tf.add(attn, bias) : attn), [b, nv, hl]);
      // valueL_h Wo_h: [H, B*Nl, vDim] -> [B, H*Nl, vDim].
      const valueOut = headRows(tf.matMul(byHead(this.valuesLProj.forward(l)), rowsByHead(this.outVProj)), vDim);
      const deltaV = tf.add(
        tf.matMul(probsV, valueOut),
        required(this.outVProj.bias, 'the bias of out_v_proj'),
      ) as tf.Tensor3D;
      if (!needLanguage) return { deltaV, deltaL: null };
      // [B, Nv, H, Nl] -> [B, H, Nl, Nv]: softmax over the visual tokens.
      const attnL = this.clamp(subtractMax(tf.transpose(attn, [0, 2, 3, 1]), -1));
      const probsL = tf.reshape(tf.softmax(attnL), [b, hl, nv]);
      // (softmax v) Wv_h: [B, H*Nl, vDim] -> [H, B*Nl, vDim] -> [H, B*Nl, d] -> [B, Nl, H*d].
      const pooled = tf.transpose(tf.reshape(tf.matMul(probsL, v), [b, heads, nl, vDim]), [1, 0, 2, 3]);
      const attended = tf.matMul(tf.reshape(pooled, [heads, b * nl, vDim]), columnsByHead(this.valuesVProj));
      const merged = tf.reshape(tf.transpose(tf.reshape(attended, [heads, b, nl, d]), [1, 2, 0, 3]), [
        b,
        nl,
        heads * d,
      ]);
      const valueV = tf.add(merged, required(this.valuesVProj.bias, 'the bias of values_v_proj'));
      const deltaL = this.outLProj.forward(valueV) as tf.Tensor3D;
      return { deltaV, deltaL };
    });
  }

  /**
   * forwardBatched for inference over many visual tokens: the [B*H, Nv, Nl] map is made whole
   * (the per-head path takes maps too large for that) but every inner-width tensor of the visual
   * side (queries, values, the attended output before out_v_proj) exists only chunkRows tokens at
   * a time. The vision side is row-wise, so its numbers are the batched path's; the language
   * side sums its product over the visual tokens chunk by chunk (float rounding only).
   */
  private forwardChunked(
    v: tf.Tensor3D,
    l: tf.Tensor3D,
    needLanguage: boolean,
    chunkRows: number,
    keep: tf.Tensor | null,
  ): { deltaV: tf.Tensor3D; deltaL: tf.Tensor3D | null } {
    return tidyKeep(() => {
      const [b, nv] = v.shape;
      const nl = l.shape[1];
      const heads = this.config.numHeads;
      const bh = b * heads;
      const bias = keep ? paddingBias(keep) : null;
      const k = splitHeads(this.lProj.forward(l), heads);
      const valueL = splitHeads(this.valuesLProj.forward(l), heads);
      // fn returns one tensor, so the concatenated result holds one.
      let attn: tf.Tensor = mapRowChunks(nv, chunkRows, 1, (start, size) => {
        const q = splitHeads(tf.mul(this.vProj.forward(sliceRows(v, start, size)), this.headDim ** -0.5), heads);
        return [tf.matMul(q, k, false, true)]; // [B*H, n, Nl]
      })[0]!;
      if (this.config.stableSoftmax2d) attn = subtractMax(attn, undefined, bias);
      attn = this.clamp(attn);
      const probsV = tf.softmax(bias ? tf.add(attn, bias) : attn);
      const [deltaV] = mapRowChunks(nv, chunkRows, 1, (start, size) => [
        this.outVProj.forward(mergeHeads(tf.matMul(sliceRows(probsV, start, size), valueL), b, heads)),
      ]);
      if (!needLanguage) return { deltaV: deltaV as tf.Tensor3D, deltaL: null };
      let attnL: tf.Tensor = tf.transpose(attn, [0, 2, 1]);
      attnL = this.clamp(subtractMax(attnL, -1));
      const probsL = tf.softmax(attnL); // [B*H, Nl, Nv]
      let sum: tf.Tensor | null = null;
      for (let start = 0; start < nv; start += chunkRows) {
        const size = Math.min(chunkRows, nv - start);
        const part = tf.tidy(() => {
          const valueV = splitHeads(this.valuesVProj.forward(sliceRows(v, start, size)), heads);
          return tf.matMul(tf.slice(probsL, [0, 0, start], [bh, nl, size]), valueV); // [B*H, Nl, d]
        });
        if (sum) {
          const next: tf.Tensor = tf.add(sum, part);
          tf.dispose([sum, part]);
          sum = next;
        } else {
          sum = part;
        }
      }
      const deltaL = this.outLProj.forward(
        mergeHeads(required(sum, 'the language-side sum over visual tokens'), b, heads),
      ) as tf.Tensor3D;
      return { deltaV: deltaV as tf.Tensor3D, deltaL };
    });
  }

  /**
   * Inference with a large attention map, one head at a time: each head's projections use that
   * head's slice of the weights, its map is computed twice (once for the global max, once for
   * the outputs), and the output projections are summed over heads, so no tensor as wide as the
   * inner width times the tokens, and no more than one head's map, is ever alive.
   */
  private forwardPerHead(
    v: tf.Tensor3D,
    l: tf.Tensor3D,
    needLanguage: boolean,
    keep: tf.Tensor | null,
  ): { deltaV: tf.Tensor3D; deltaL: tf.Tensor3D | null } {
    const d = this.headDim;
    const project = (layer: Linear, x: tf.Tensor3D, h: number, scale = 1): tf.Tensor3D =>
      tf.tidy(() => {
        const [b, n, c] = x.shape;
        const w = tf.slice(layer.weight, [0, h * d], [c, d]);
        const y = tf.add(
          tf.matMul(tf.reshape(x, [b * n, c]), w),
          tf.slice(required(layer.bias, 'the bias of a fusion projection'), [h * d], [d]),
        );
        return tf.reshape(scale === 1 ? y : tf.mul(y, scale), [b, n, d]) as tf.Tensor3D;
      });
    const headMap = (h: number): tf.Tensor3D =>
      tf.tidy(
        () => tf.matMul(project(this.vProj, v, h, d ** -0.5), project(this.lProj, l, h), false, true) as tf.Tensor3D,
      ); // [B, Nv, Nl]
    const bias = keep ? paddingBias(keep) : null;
    // The global max stays a tensor (no read back), so that a recorded graph computes it too.
    let globalMax: tf.Tensor | null = null;
    if (this.config.stableSoftmax2d) {
      const maxes = Array.from({ length: this.config.numHeads }, (_, h) =>
        tf.tidy(() => tf.max(bias ? tf.add(headMap(h), bias) : headMap(h))),
      );
      globalMax = tf.tidy(() => tf.max(tf.stack(maxes)));
      tf.dispose(maxes);
    }
    let deltaV: tf.Tensor3D | null = null;
    let deltaL: tf.Tensor3D | null = null;
    const accumulate = (sum: tf.Tensor3D | null, part: tf.Tensor3D): tf.Tensor3D => {
      if (!sum) return part;
      const next = tf.add(sum, part) as tf.Tensor3D;
      tf.dispose([sum, part]);
      return next;
    };
    for (let h = 0; h < this.config.numHeads; h++) {
      const [ov, ol] = tidyKeep((): [tf.Tensor3D, tf.Tensor3D | null] => {
        let a: tf.Tensor = headMap(h);
        if (globalMax) a = tf.sub(a, globalMax);
        a = this.clamp(a);
        const outRows = (layer: Linear, x: tf.Tensor3D): tf.Tensor3D => {
          const [b, n] = x.shape;
          const w = tf.slice(layer.weight, [h * d, 0], [d, layer.outDim]);
          return tf.reshape(tf.matMul(tf.reshape(x, [b * n, d]), w), [b, n, layer.outDim]) as tf.Tensor3D;
        };
        const probs = tf.softmax(bias ? tf.add(a, bias) : a);
        const ov = outRows(this.outVProj, tf.matMul(probs, project(this.valuesLProj, l, h)) as tf.Tensor3D);
        if (!needLanguage) return [ov, null];
        const t = tf.transpose(a, [0, 2, 1]);
        const aL = this.clamp(subtractMax(t, -1));
        return [ov, outRows(this.outLProj, tf.matMul(tf.softmax(aL), project(this.valuesVProj, v, h)) as tf.Tensor3D)];
      });
      deltaV = accumulate(deltaV, ov);
      if (ol) deltaL = accumulate(deltaL, ol);
    }
    tf.dispose([...(bias ? [bias] : []), ...(globalMax ? [globalMax] : [])]);
    const withBias = (sum: tf.Tensor3D, layer: Linear): tf.Tensor3D => {
      const out = tf.add(sum, required(layer.bias, 'the bias of a fusion output projection')) as tf.Tensor3D;
      sum.dispose();
      return out;
    };
    return {
      deltaV: withBias(required(deltaV, 'the visual update of the heads'), this.outVProj),
      deltaL: deltaL ? withBias(deltaL, this.outLProj) : null,
    };
  }
}

/**
 * GLIP's BiAttentionBlock as APE uses it: both inputs layer-normed, attended, and the outputs are
 * the NORMED inputs plus gamma-scaled deltas.
 */
export class BiAttentionBlock extends Module {
  readonly layerNormV: LayerNorm;
  readonly layerNormL: LayerNorm;
  readonly attn: BiMultiHeadAttention;
  readonly gammaV: tf.Variable;
  readonly gammaL: tf.Variable;

  constructor(
    readonly config: BiAttentionConfig,
    rng: Rng,
  ) {
    super();
    this.layerNormV = this.child('layer_norm_v', new LayerNorm(config.vDim, rng));
    this.layerNormL = this.child('layer_norm_l', new LayerNorm(config.lDim, rng));
    this.attn = this.child('attn', new BiMultiHeadAttention(config, rng));
    this.gammaV = this.param('gamma_v', [config.vDim], init.constant(config.initValues), rng);
    this.gammaL = this.param('gamma_l', [config.lDim], init.constant(config.initValues), rng);
  }

  forward(v: tf.Tensor3D, l: tf.Tensor3D, options: FusionRunOptions = {}): { v: tf.Tensor3D; l: tf.Tensor3D | null } {
    return tidyKeep(() => {
      const chunkRows = options.training ? Infinity : (options.chunkRows ?? Infinity);
      const nv = mapRows(v, chunkRows, (x) => this.layerNormV.forward(x)) as tf.Tensor3D;
      const nl = this.layerNormL.forward(l) as tf.Tensor3D;
      const { deltaV, deltaL } = this.attn.forward(nv, nl, options);
      const outV = tf.add(nv, tf.mul(this.gammaV, deltaV)) as tf.Tensor3D;
      const outL = deltaL ? (tf.add(nl, tf.mul(this.gammaL, deltaL)) as tf.Tensor3D) : null;
      return { v: outV, l: outL };
    });
  }
}

/** APE's VisionLanguageFusion: a holder of `b_attn` (activation checkpointing has no TF.js analogue). */
export class VisionLanguageFusion extends Module {
  readonly bAttn: BiAttentionBlock;

  constructor(
    readonly config: BiAttentionConfig,
    rng: Rng,
  ) {
    super();
    this.bAttn = this.child('b_attn', new BiAttentionBlock(config, rng));
  }

  forward(v: tf.Tensor3D, l: tf.Tensor3D, options: FusionRunOptions = {}): { v: tf.Tensor3D; l: tf.Tensor3D | null } {
    return this.bAttn.forward(v, l, options);
  }
}
