import { tf } from '../../engine/engine.js';
import type { Rng } from '../../util/random.js';
import { Module, init } from '../module.js';
import { Linear } from '../layers/linear.js';
import { LayerNorm } from '../layers/layer-norm.js';
import { mergeHeads, splitHeads, tidyKeep } from '../ops.js';

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
}

const CLAMP = 50000;

/** GLIP's BiMultiHeadAttention: one attention map read in both directions. */
export class BiMultiHeadAttention extends Module {
  readonly vProj: Linear;
  readonly lProj: Linear;
  readonly valuesVProj: Linear;
  readonly valuesLProj: Linear;
  readonly outVProj: Linear;
  readonly outLProj: Linear;
  readonly headDim: number;

  constructor(readonly config: BiAttentionConfig, rng: Rng) {
    super();
    const { vDim, lDim, embedDim, numHeads } = config;
    if (embedDim % numHeads !== 0) throw new Error(`BiMultiHeadAttention: embedDim ${embedDim} is not divisible by ${numHeads} heads`);
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
  forward(v: tf.Tensor3D, l: tf.Tensor3D, options: FusionRunOptions = {}): { deltaV: tf.Tensor3D; deltaL: tf.Tensor3D | null } {
    const needLanguage = options.needLanguage ?? true;
    const [b, nv] = v.shape;
    const nl = l.shape[1];
    const heads = this.config.numHeads;
    const dropoutActive = !!options.training && this.config.dropout > 0;
    // With one text token the vision-side softmax is exactly 1: the vision delta is that token's
    // value for every pixel, and the vision-side projections drop out.
    if (nl === 1 && !dropoutActive && !needLanguage) {
      return tidyKeep(() => {
        // [B, 1, vDim]: broadcast over the pixels by the caller's add.
        const deltaV = this.outVProj.forward(this.valuesLProj.forward(l)) as tf.Tensor3D;
        return { deltaV, deltaL: null };
      });
    }
    const large = !options.training && b * heads * nv * nl > (1 << 22);
    return large ? this.forwardPerHead(v, l, needLanguage) : this.forwardBatched(v, l, options, needLanguage);
  }

  private forwardBatched(v: tf.Tensor3D, l: tf.Tensor3D, options: FusionRunOptions, needLanguage: boolean): { deltaV: tf.Tensor3D; deltaL: tf.Tensor3D | null } {
    return tidyKeep(() => {
      const b = v.shape[0];
      const heads = this.config.numHeads;
      const q = splitHeads(tf.mul(this.vProj.forward(v), this.headDim ** -0.5), heads);
      const k = splitHeads(this.lProj.forward(l), heads);
      const valueV = splitHeads(this.valuesVProj.forward(v), heads);
      const valueL = splitHeads(this.valuesLProj.forward(l), heads);
      let attn: tf.Tensor = tf.matMul(q, k, false, true); // [B*H, Nv, Nl]
      if (this.config.stableSoftmax2d) attn = tf.sub(attn, tf.max(attn));
      attn = this.clamp(attn);
      const probsV = this.dropout(tf.softmax(attn), options);
      const deltaV = this.outVProj.forward(mergeHeads(tf.matMul(probsV, valueL), b, heads)) as tf.Tensor3D;
      if (!needLanguage) return { deltaV, deltaL: null };
      let attnL: tf.Tensor = tf.transpose(attn, [0, 2, 1]);
      attnL = this.clamp(tf.sub(attnL, tf.max(attnL, -1, true)));
      const probsL = this.dropout(tf.softmax(attnL), options);
      const deltaL = this.outLProj.forward(mergeHeads(tf.matMul(probsL, valueV), b, heads)) as tf.Tensor3D;
      return { deltaV, deltaL };
    });
  }

  /** Inference with a large attention map: one head at a time, so only one head's map is alive. */
  private forwardPerHead(v: tf.Tensor3D, l: tf.Tensor3D, needLanguage: boolean): { deltaV: tf.Tensor3D; deltaL: tf.Tensor3D | null } {
    return tidyKeep(() => {
      const b = v.shape[0];
      const heads = this.config.numHeads;
      const q = splitHeads(tf.mul(this.vProj.forward(v), this.headDim ** -0.5), heads);
      const k = splitHeads(this.lProj.forward(l), heads);
      const valueV = splitHeads(this.valuesVProj.forward(v), heads);
      const valueL = splitHeads(this.valuesLProj.forward(l), heads);
      const headRows = (h: number) => tf.tensor1d(Array.from({ length: b }, (_, i) => i * heads + h), 'int32');
      const maps: tf.Tensor[] = [];
      let globalMax = -Infinity;
      for (let h = 0; h < heads; h++) {
        const rows = headRows(h);
        const a = tf.matMul(tf.gather(q, rows), tf.gather(k, rows), false, true);
        globalMax = Math.max(globalMax, tf.max(a).dataSync()[0]!);
        maps.push(a);
      }
      const outV: tf.Tensor[] = [];
      const outL: tf.Tensor[] = [];
      for (let h = 0; h < heads; h++) {
        const rows = headRows(h);
        const [ov, ol] = tidyKeep((): [tf.Tensor, tf.Tensor | null] => {
          let a: tf.Tensor = maps[h]!;
          if (this.config.stableSoftmax2d) a = tf.sub(a, globalMax);
          a = this.clamp(a);
          const ov = tf.matMul(tf.softmax(a), tf.gather(valueL, rows));
          if (!needLanguage) return [ov, null];
          const aL = this.clamp(tf.sub(tf.transpose(a, [0, 2, 1]), tf.max(tf.transpose(a, [0, 2, 1]), -1, true)));
          return [ov, tf.matMul(tf.softmax(aL), tf.gather(valueV, rows))];
        });
        maps[h]!.dispose();
        outV.push(ov);
        if (ol) outL.push(ol);
      }
      // [H, B, N, d] -> [B*H, N, d] in batch-major head order
      const regroup = (parts: tf.Tensor[]): tf.Tensor3D => {
        const stacked = tf.stack(parts, 1); // [B, H, N, d]
        const [, , n, d] = stacked.shape as [number, number, number, number];
        return mergeHeads(tf.reshape(stacked, [b * heads, n, d]), b, heads);
      };
      const deltaV = this.outVProj.forward(regroup(outV)) as tf.Tensor3D;
      const deltaL = needLanguage ? (this.outLProj.forward(regroup(outL)) as tf.Tensor3D) : null;
      return { deltaV, deltaL };
    });
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

  constructor(readonly config: BiAttentionConfig, rng: Rng) {
    super();
    this.layerNormV = this.child('layer_norm_v', new LayerNorm(config.vDim, rng));
    this.layerNormL = this.child('layer_norm_l', new LayerNorm(config.lDim, rng));
    this.attn = this.child('attn', new BiMultiHeadAttention(config, rng));
    this.gammaV = this.param('gamma_v', [config.vDim], init.constant(config.initValues), rng);
    this.gammaL = this.param('gamma_l', [config.lDim], init.constant(config.initValues), rng);
  }

  forward(v: tf.Tensor3D, l: tf.Tensor3D, options: FusionRunOptions = {}): { v: tf.Tensor3D; l: tf.Tensor3D | null } {
    return tidyKeep(() => {
      const nv = this.layerNormV.forward(v) as tf.Tensor3D;
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

  constructor(readonly config: BiAttentionConfig, rng: Rng) {
    super();
    this.bAttn = this.child('b_attn', new BiAttentionBlock(config, rng));
  }

  forward(v: tf.Tensor3D, l: tf.Tensor3D, options: FusionRunOptions = {}): { v: tf.Tensor3D; l: tf.Tensor3D | null } {
    return this.bAttn.forward(v, l, options);
  }
}
