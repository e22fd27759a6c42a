import { tf } from '../../engine/engine.js';
import type { Rng } from '../../util/random.js';
import { Module, init } from '../../nn/module.js';
import { Linear } from '../../nn/linear.js';

const CLAMP = 50000;

/**
 * APE's region-prompt classifier (VisionLanguageAlign): with e the L2-normalised prompt embedding,
 *   logit[b, q, p] = (x[b, q] . (W (e/2) + b_proj)) / exp(log_scale) + e . bias_lang + bias0,
 * clamped to [-50000, 50000]. Each prompt column depends on that prompt alone.
 */
export class VisionLanguageAlign extends Module {
  readonly projection: Linear;
  readonly logScale: tf.Variable;
  readonly biasLang: tf.Variable;
  readonly bias0: tf.Variable;

  constructor(
    readonly embedDim: number,
    readonly embedDimLanguage: number,
    rng: Rng,
    options: { priorProb?: number; logScale?: number } = {},
  ) {
    super();
    const prior = options.priorProb ?? 0.01;
    this.projection = this.child('dot_product_projection_text', new Linear(embedDimLanguage, embedDim, rng));
    this.logScale = this.param('log_scale', [1], init.constant(options.logScale ?? 0), rng);
    this.biasLang = this.param('bias_lang', [embedDimLanguage], init.zeros(), rng);
    this.bias0 = this.param('bias0', [1], init.constant(-Math.log((1 - prior) / prior)), rng);
  }

  /**
   * queries [B, Q, D]; prompts [P, Dl] shared by the batch or [B, P, Dl] per image -> logits [B, Q, P].
   */
  forward(queries: tf.Tensor3D, prompts: tf.Tensor2D | tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, q, d] = queries.shape;
      const dl = this.embedDimLanguage;
      // Row reductions as matMuls against a column: thousands of prompts reduce at GEMM speed.
      const rows = tf.reshape(prompts, [-1, dl]) as tf.Tensor2D;
      const norms = tf.sqrt(tf.maximum(tf.matMul(tf.square(rows), tf.ones([dl, 1])), 1e-24));
      const e2d = tf.div(rows, norms) as tf.Tensor2D;
      const e = prompts.rank === 2 ? e2d : tf.reshape(e2d, prompts.shape);
      const projected = this.projection.forward(tf.mul(e, 0.5)); // [.., P, D]
      const promptBias = tf.reshape(
        tf.add(tf.matMul(e2d, tf.reshape(this.biasLang, [dl, 1])), this.bias0),
        prompts.shape.slice(0, -1),
      ); // [.., P]
      const invScale = tf.exp(tf.neg(this.logScale));
      let logits: tf.Tensor;
      if (projected.rank === 2) {
        const p = projected.shape[0]!;
        const dots = tf.matMul(tf.reshape(queries, [b * q, d]), tf.transpose(projected)); // [B*Q, P]
        logits = tf.reshape(tf.add(tf.mul(dots, invScale), promptBias), [b, q, p]);
      } else {
        const p = projected.shape[1]!;
        const dots = tf.matMul(queries, tf.transpose(projected, [0, 2, 1])); // [B, Q, P]
        logits = tf.add(tf.mul(dots, invScale), tf.reshape(promptBias, [b, 1, p]));
      }
      return tf.clipByValue(logits, -CLAMP, CLAMP) as tf.Tensor3D;
    });
  }

  /**
   * The query side of `forward`, for scoring many prompts shared by the batch a chunk at a time:
   * x . (W e/2 + b_proj) / s + e . bias_lang + bias0 = (W^T x / (2s) + bias_lang) . e + (x . b_proj / s + bias0),
   * so the prompts need only their normalisation per chunk and the projection runs on the Q
   * queries instead of the P prompts. queries [N, D] -> keys [N, Dl] and offsets [N, 1].
   */
  queryKeys(queries: tf.Tensor2D): QueryKeys {
    return tf.tidy(() => {
      const invScale = tf.exp(tf.neg(this.logScale));
      const w = this.projection.weight; // [Dl, D]
      const keys = tf.add(tf.mul(tf.matMul(queries, w, false, true), tf.mul(invScale, 0.5)), this.biasLang);
      const bias = this.projection.bias;
      const dot = bias ? tf.matMul(queries, tf.reshape(bias, [-1, 1])) : tf.zeros([queries.shape[0], 1]);
      const offsets = tf.add(tf.mul(dot, invScale), this.bias0);
      return { keys: keys as tf.Tensor2D, offsets: offsets as tf.Tensor2D };
    });
  }

  /** Logits [N, C] of the queries behind `keys` against prompts [C, Dl] (as `forward`, up to rounding). */
  scorePrompts(keys: QueryKeys, prompts: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.scoreUnitPrompts(keys, this.normalizePrompts(prompts)));
  }

  /**
   * The prompt side of scorePrompts: prompts [C, Dl] -> L2-normalised rows (a zero row stays zero).
   * It depends on the prompts alone, so a vocabulary scored image after image is normalised once.
   */
  normalizePrompts(prompts: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const dl = this.embedDimLanguage;
      const norms = tf.sqrt(tf.maximum(tf.matMul(tf.square(prompts), tf.ones([dl, 1])), 1e-24));
      return tf.div(prompts, norms) as tf.Tensor2D;
    });
  }

  /** Logits [N, C] of the queries behind `keys` against prompt rows that normalizePrompts made. */
  scoreUnitPrompts(keys: QueryKeys, unitPrompts: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const logits = tf.add(tf.matMul(keys.keys, unitPrompts, false, true), keys.offsets);
      return tf.clipByValue(logits, -CLAMP, CLAMP) as tf.Tensor2D;
    });
  }
}

/** The prompt-independent part of the classifier for a set of queries (VisionLanguageAlign.queryKeys). */
export type QueryKeys = { keys: tf.Tensor2D; offsets: tf.Tensor2D };
