import { tf } from '../engine/engine.js';
import type { Rng } from '../util/random.js';
import { Module, init } from './module.js';
import { Linear } from './linear.js';
import { mergeHeads, splitHeads } from './ops.js';

/**
 * torch.nn.MultiheadAttention (batch first, no masks): packed `in_proj_weight` stored [E, 3E]
 * (PyTorch's [3E, E] transposed; columns q, k, v) and `in_proj_bias`, then `out_proj`.
 */
export class TorchMultiheadAttention extends Module {
  readonly inProjWeight: tf.Variable;
  readonly inProjBias: tf.Variable;
  readonly outProj: Linear;

  constructor(
    readonly embedDim: number,
    readonly numHeads: number,
    rng: Rng,
  ) {
    super();
    if (embedDim % numHeads !== 0)
      throw new Error(`MultiheadAttention: ${embedDim} is not divisible by ${numHeads} heads`);
    this.inProjWeight = this.param('in_proj_weight', [embedDim, 3 * embedDim], init.xavierUniform(), rng);
    this.inProjBias = this.param('in_proj_bias', [3 * embedDim], init.zeros(), rng);
    this.outProj = this.child('out_proj', new Linear(embedDim, embedDim, rng, { biasInit: init.zeros() }));
  }

  /**
   * query/key [B, Nq|Nk, E] (position already added), value [B, Nk, E] -> [B, Nq, E]. `scoreBias`
   * [B, Nq, Nk] is added to every head's scores before the softmax (a large negative hides a key).
   */
  forward(query: tf.Tensor3D, key: tf.Tensor3D, value: tf.Tensor3D, scoreBias: tf.Tensor3D | null = null): tf.Tensor3D {
    return tf.tidy(() => {
      const e = this.embedDim;
      const h = this.numHeads;
      const [b, nq] = query.shape;
      const nk = key.shape[1];
      const w = this.inProjWeight;
      const bias = this.inProjBias;
      const project = (x: tf.Tensor3D, part: number) =>
        tf.add(tf.matMul(tf.reshape(x, [-1, e]), tf.slice(w, [0, part * e], [e, e])), tf.slice(bias, [part * e], [e]));
      const q = tf.mul(splitHeads(tf.reshape(project(query, 0), [b, nq, e]), h), 1 / Math.sqrt(e / h));
      const k = splitHeads(tf.reshape(project(key, 1), [b, nk, e]), h);
      const v = splitHeads(tf.reshape(project(value, 2), [b, nk, e]), h);
      let scores = tf.matMul(q, k, false, true);
      if (scoreBias)
        scores = tf.reshape(tf.add(tf.reshape(scores, [b, h, nq, nk]), tf.expandDims(scoreBias, 1)), [b * h, nq, nk]);
      const attn = tf.softmax(scores);
      const out = mergeHeads(tf.matMul(attn, v), b, h);
      return this.outProj.forward(out) as tf.Tensor3D;
    });
  }
}

/** detrex MultiheadAttention: the torch module under `attn`, position added to q and k, identity added. */
export class DetrexMultiheadAttention extends Module {
  readonly attn: TorchMultiheadAttention;

  constructor(embedDim: number, numHeads: number, rng: Rng) {
    super();
    this.attn = this.child('attn', new TorchMultiheadAttention(embedDim, numHeads, rng));
  }

  /** Self-attention: q = k = query + pos, v = query; returns query + attention (`scoreBias`: see TorchMultiheadAttention). */
  forward(query: tf.Tensor3D, queryPos: tf.Tensor3D | null, scoreBias: tf.Tensor3D | null = null): tf.Tensor3D {
    return tf.tidy(() => {
      const qk = queryPos ? (tf.add(query, queryPos) as tf.Tensor3D) : query;
      return tf.add(query, this.attn.forward(qk, qk, query, scoreBias)) as tf.Tensor3D;
    });
  }
}
