import { tf } from '../engine/engine.js';
import { semanticLabels, type SemanticGeometry } from './semantic.js';
import { scoreConfidence, unlabelUnsure } from './semantic-confidence.js';
import { getOrThrow } from '../util/checked.js';

/**
 * Prompt columns are reduced in blocks of this many (aligned to the first column of each series
 * of chunks), so that a chunk size that is a multiple of it gives the same sums as one chunk.
 */
export const SEMANTIC_BLOCK = 256;

/**
 * Relative slack on the pruning bound: a prompt is dropped only when its bound is this far under
 * the background, far beyond float rounding of the sums involved.
 */
const SLACK = 1e-3;

/** Largest 1 / T summed against a fixed shift (exp(-60) is still a normal float32). */
const MAX_FIXED_SHIFT = 60;

/**
 * Semantic accumulation (semantic.ts) over prompt columns that arrive a chunk at a time, with
 * memory that does not grow with the number of prompts. With weights W = softmax over prompts of
 * sigmoid(logits) / T, prompt c's map is sum_q W[q, c] M[q] with masks M in [0, 1], so it never
 * exceeds its column sum sum_q W[q, c]; the column sums add up to Q, so at most Q / background
 * prompts can reach the constant background channel anywhere. The others can never label a
 * pixel and are dropped while streaming; the kept ones (few) are accumulated exactly as before.
 * The softmax normaliser is a per-query log-sum-exp, summed block by block in float64 in column
 * order, so the result does not depend on the chunk size (a multiple of SEMANTIC_BLOCK).
 */
export class SemanticStream {
  /** Per query, log sum_c exp(score[q, c] / T) over the columns seen so far. */
  private readonly logNorm: Float64Array;
  /** Prompts that may still reach the background, with their score columns [Q]. */
  private kept = new Map<number, Float32Array>();
  private readonly threshold: number;

  constructor(
    private readonly numQueries: number,
    private readonly temperature: number,
    background: number,
  ) {
    if (!(temperature > 0)) throw new Error(`SemanticStream: temperature must be > 0, got ${temperature}`);
    this.logNorm = new Float64Array(numQueries).fill(-Infinity);
    // A background <= 0 prunes nothing: every prompt is kept.
    this.threshold = background > 0 ? background * (1 - SLACK) : -Infinity;
  }

  /** scores [Q, count] = sigmoid of the logits of prompts start .. start + count - 1 (tensor and host copy). */
  add(scores: tf.Tensor2D, values: Float32Array, start: number, count: number): void {
    const q = this.numQueries;
    const blocks = Math.ceil(count / SEMANTIC_BLOCK);
    const fixed = 1 / this.temperature <= MAX_FIXED_SHIFT;
    // With a fixed shift exp(s / T - 1 / T) is made once, for the block sums and the bound.
    const shifted = fixed
      ? tf.tidy(() => tf.exp(tf.sub(tf.div(scores, this.temperature), 1 / this.temperature)) as tf.Tensor2D)
      : null;
    try {
      const lse = this.blockLogSumExp(shifted ?? scores, count, fixed);
      for (let i = 0; i < q; i++) {
        let acc = this.logNorm[i]!;
        for (let b = 0; b < blocks; b++) acc = logAddExp(acc, lse[i * blocks + b]!);
        this.logNorm[i] = acc;
      }
      if (this.threshold === -Infinity) {
        for (let c = 0; c < count; c++) this.kept.set(start + c, column(values, q, count, c));
        return;
      }
      // Bound of each column with the normaliser so far (which only grows, so the bound only
      // falls); a looser slack than the final test, so that rounding never drops a prompt the
      // final test keeps. sum_q exp(s / T - L_q) = sum_q exp(s / T - shift) exp(shift - L_q): a GEMV.
      const bound = tf.tidy(() => {
        const shift = fixed ? 1 / this.temperature : Math.min(...this.logNorm);
        const inverse = tf.tensor2d(
          Float32Array.from(this.logNorm, (l) => Math.exp(shift - l)),
          [1, q],
        );
        return tf.matMul(inverse, shifted ?? tf.exp(tf.sub(tf.div(scores, this.temperature), shift)));
      });
      const sums = bound.dataSync() as Float32Array;
      bound.dispose();
      const loose = this.threshold * (1 - SLACK);
      for (let c = 0; c < count; c++) if (sums[c]! >= loose) this.kept.set(start + c, column(values, q, count, c));
      if (this.kept.size > (2 * q) / this.threshold + 1024) this.prune();
    } finally {
      shifted?.dispose();
    }
  }

  /**
   * Per query and block of SEMANTIC_BLOCK columns, log sum exp(s / T): [Q, blocks] row-major.
   * `fixed`: x holds exp(s / T - 1 / T) (scores are at most 1, so nothing overflows, and with
   * 1 / T <= MAX_FIXED_SHIFT nothing underflows); else x holds the scores and TF's own stable
   * log-sum-exp runs on s / T.
   */
  private blockLogSumExp(x: tf.Tensor2D, count: number, fixed: boolean): Float32Array {
    const q = this.numQueries;
    const t = this.temperature;
    const blocks = Math.ceil(count / SEMANTIC_BLOCK);
    const full = Math.floor(count / SEMANTIC_BLOCK);
    const reduce = (v: tf.Tensor, axis: number) =>
      fixed ? tf.add(tf.log(tf.sum(v, axis, axis === 1)), 1 / t) : tf.logSumExp(tf.div(v, t), axis, axis === 1);
    const out = tf.tidy(() => {
      const parts: tf.Tensor[] = [];
      if (full > 0) {
        const head = full * SEMANTIC_BLOCK === count ? x : tf.slice(x, [0, 0], [q, full * SEMANTIC_BLOCK]);
        parts.push(reduce(tf.reshape(head, [q, full, SEMANTIC_BLOCK]), 2));
      }
      if (full < blocks) parts.push(reduce(tf.slice(x, [0, full * SEMANTIC_BLOCK], [q, -1]), 1));
      return parts.length === 1 ? parts[0]! : tf.concat(parts, 1);
    });
    const values = out.dataSync() as Float32Array;
    out.dispose();
    return values;
  }

  /** Drops kept prompts whose column sum, with the normaliser so far, is under the threshold. */
  private prune(): void {
    const next = new Map<number, Float32Array>();
    for (const [prompt, col] of this.kept) if (this.columnSum(col) >= this.threshold) next.set(prompt, col);
    this.kept = next;
  }

  private columnSum(col: Float32Array): number {
    let sum = 0;
    for (let i = 0; i < col.length; i++) sum += Math.exp(col[i]! / this.temperature - this.logNorm[i]!);
    return sum;
  }

  /** The prompts still kept, in column order. */
  keptPrompts(): number[] {
    this.prune();
    return [...this.kept.keys()].sort((a, b) => a - b);
  }

  /**
   * The label map (prompt indices, -1 for background) from the mask probabilities per cell
   * [h*w, Q] (cellMaskProbabilities, the caller's), as semanticLabels over every prompt would
   * give it; with `confidence` > 0, labels whose confidence is under it are removed (unlabelUnsure).
   */
  labels(masksT: tf.Tensor2D, geometry: SemanticGeometry, background: number, confidence: number): Int32Array {
    const prompts = this.keptPrompts();
    const k = prompts.length;
    if (k === 0) return new Int32Array(geometry.width * geometry.height).fill(-1);
    const q = this.numQueries;
    const flat = new Float32Array(q * k);
    prompts.forEach((p, j) => {
      const col = getOrThrow(this.kept, p, 'SemanticStream: kept prompts');
      for (let i = 0; i < q; i++) flat[i * k + j] = col[i]!;
    });
    const scores = tf.tensor2d(flat, [q, k]);
    const norm = tf.tensor2d(Float32Array.from(this.logNorm), [q, 1]);
    const weights = tf.tidy(() => tf.exp(tf.sub(tf.div(scores, this.temperature), norm)) as tf.Tensor2D);
    const source = (start: number, count: number) =>
      tf.tidy(
        () =>
          tf.matMul(
            masksT,
            start === 0 && count === k ? weights : tf.slice(weights, [0, start], [-1, count]),
          ) as tf.Tensor2D,
      );
    try {
      const labels = semanticLabels(source, k, geometry, background);
      if (confidence > 0) {
        const sure = scoreConfidence(scores, masksT);
        unlabelUnsure(labels, sure.source, k, geometry, confidence);
        tf.dispose(sure.held);
      }
      for (let i = 0; i < labels.length; i++) if (labels[i]! >= 0) labels[i] = prompts[labels[i]!]!;
      return labels;
    } finally {
      tf.dispose([scores, norm, weights]);
    }
  }
}

/** Column c of a row-major [rows, count] array. */
function column(values: Float32Array, rows: number, count: number, c: number): Float32Array {
  const out = new Float32Array(rows);
  for (let i = 0; i < rows; i++) out[i] = values[i * count + c]!;
  return out;
}

/** log(exp(a) + exp(b)) in float64. */
function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const m = Math.max(a, b);
  return m + Math.log1p(Math.exp(-Math.abs(a - b)));
}
