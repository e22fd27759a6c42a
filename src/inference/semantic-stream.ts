import { tf } from '../engine/engine.js';
import { semanticLabels, type SemanticGeometry } from './semantic.js';
import { scoreConfidence, unlabelUnsure } from './semantic-confidence.js';
import { getOrThrow } from '../util/checked.js';
import {
  chunkSemanticStats,
  MAX_FIXED_SHIFT,
  type PromptChunkValues,
  SEMANTIC_BLOCK,
} from '../modeling/prompt-chunk-scores.js';

/**
 * Relative slack on the pruning bound: a prompt is dropped only when its bound is this far under
 * the background, far beyond float rounding of the sums involved.
 */
const SLACK = 1e-3;

/**
 * Semantic accumulation (semantic.ts) over prompt columns that arrive a chunk at a time, with
 * memory that does not grow with the number of prompts. With weights W = softmax over prompts of
 * sigmoid(logits) / T, prompt c's map is sum_q W[q, c] M[q] with masks M in [0, 1], so it never
 * exceeds its column sum sum_q W[q, c]; the column sums add up to Q, so at most Q / background
 * prompts can reach the constant background channel anywhere. The others can never label a
 * pixel and are dropped while streaming; the kept ones (few) are accumulated exactly as before.
 * The softmax normaliser is a per-query log-sum-exp, summed block by block in float64 in column
 * order, so the result does not depend on the chunk size (a multiple of SEMANTIC_BLOCK). For
 * 1 / T <= MAX_FIXED_SHIFT (`fixedShift`) a chunk's statistics are chunkSemanticStats, which the
 * prompt scorer of either engine computes with the scores (`addStats`); `add` computes them itself.
 */
export class SemanticStream {
  /** Per query, log sum_c exp(score[q, c] / T) over the columns seen so far. */
  private readonly logNorm: Float64Array;
  /** Prompts that may still reach the background, with their score columns [Q]. */
  private kept = new Map<number, Float32Array>();
  private readonly threshold: number;
  readonly inverseTemperature: number;

  constructor(
    private readonly numQueries: number,
    private readonly temperature: number,
    background: number,
  ) {
    if (!(temperature > 0)) throw new Error(`SemanticStream: temperature must be > 0, got ${temperature}`);
    this.logNorm = new Float64Array(numQueries).fill(-Infinity);
    // A background <= 0 prunes nothing: every prompt is kept.
    this.threshold = background > 0 ? background * (1 - SLACK) : -Infinity;
    this.inverseTemperature = 1 / temperature;
  }

  /** Whether chunks' statistics come from chunkSemanticStats (1 / T <= MAX_FIXED_SHIFT) rather than a stable log-sum-exp. */
  get fixedShift(): boolean {
    return this.inverseTemperature <= MAX_FIXED_SHIFT;
  }

  /** [Q] exp(L_q - 1 / T) with the normaliser so far: the `prior` of the next chunk's statistics. */
  prior(): Float32Array {
    const shift = this.inverseTemperature;
    return Float32Array.from(this.logNorm, (l) => Math.exp(l - shift));
  }

  /**
   * A chunk of prompts start .. start + count - 1 scored at this temperature with `prior()`:
   * values [Q, count] (sigmoid scores), stats of the chunk's `width` columns (chunkSemanticStats).
   */
  addStats(
    values: Float32Array,
    start: number,
    count: number,
    stats: Pick<PromptChunkValues, 'blockSums' | 'bound'>,
    width: number,
  ): void {
    if (!this.fixedShift)
      throw new Error(`SemanticStream: 1 / T = ${this.inverseTemperature} is beyond the fixed shift; use add`);
    const q = this.numQueries;
    const stride = width / SEMANTIC_BLOCK;
    const blocks = Math.ceil(count / SEMANTIC_BLOCK);
    for (let i = 0; i < q; i++) {
      let acc = this.logNorm[i]!;
      for (let b = 0; b < blocks; b++)
        acc = logAddExp(acc, Math.log(stats.blockSums[i * stride + b]!) + this.inverseTemperature);
      this.logNorm[i] = acc;
    }
    this.keep(values, start, count, stats.bound);
  }

  /** scores [Q, count] = sigmoid of the logits of prompts start .. start + count - 1 (tensor and host copy). */
  add(scores: tf.Tensor2D, values: Float32Array, start: number, count: number): void {
    if (this.fixedShift) {
      const width = Math.ceil(count / SEMANTIC_BLOCK) * SEMANTIC_BLOCK;
      const columns = new Float32Array(width).fill(1, 0, count);
      const stats = tf.tidy(() => {
        const out = chunkSemanticStats(
          tf.pad(scores, [
            [0, 0],
            [0, width - count],
          ]),
          tf.tensor2d(columns, [1, width]),
          tf.tensor1d([this.inverseTemperature]),
          tf.tensor2d(this.prior(), [this.numQueries, 1]),
        );
        return [out.blockSums, out.bound];
      });
      const [blockSums, bound] = stats.map((t) => t.dataSync() as Float32Array) as [Float32Array, Float32Array];
      tf.dispose(stats);
      this.addStats(values, start, count, { blockSums, bound }, width);
      return;
    }
    const q = this.numQueries;
    const blocks = Math.ceil(count / SEMANTIC_BLOCK);
    const lse = this.blockLogSumExp(scores, count);
    for (let i = 0; i < q; i++) {
      let acc = this.logNorm[i]!;
      for (let b = 0; b < blocks; b++) acc = logAddExp(acc, lse[i * blocks + b]!);
      this.logNorm[i] = acc;
    }
    if (this.threshold === -Infinity) {
      this.keep(values, start, count, null);
      return;
    }
    // sum_q exp(s / T - L_q) = sum_q exp(s / T - shift) exp(shift - L_q): a GEMV, shifted by the
    // smallest normaliser so that nothing overflows.
    const bound = tf.tidy(() => {
      const shift = Math.min(...this.logNorm);
      const inverse = tf.tensor2d(
        Float32Array.from(this.logNorm, (l) => Math.exp(shift - l)),
        [1, q],
      );
      return tf.matMul(inverse, tf.exp(tf.sub(tf.div(scores, this.temperature), shift)));
    });
    const sums = bound.dataSync() as Float32Array;
    bound.dispose();
    this.keep(values, start, count, sums);
  }

  /**
   * Keeps the columns whose bound (with the normaliser so far, which only grows, so the bound only
   * falls) reaches the threshold with a looser slack than the final test, so that rounding never
   * drops a prompt the final test keeps; null keeps every column.
   */
  private keep(values: Float32Array, start: number, count: number, bound: Float32Array | null): void {
    const q = this.numQueries;
    const loose = this.threshold * (1 - SLACK);
    const all = bound === null || this.threshold === -Infinity;
    for (let c = 0; c < count; c++)
      if (all || bound[c]! >= loose) this.kept.set(start + c, column(values, q, count, c));
    if (this.kept.size > (2 * q) / this.threshold + 1024) this.prune();
  }

  /** Per query and block of SEMANTIC_BLOCK columns, log sum exp(s / T) with TF's stable log-sum-exp: [Q, blocks] row-major. */
  private blockLogSumExp(x: tf.Tensor2D, count: number): Float32Array {
    const q = this.numQueries;
    const t = this.temperature;
    const blocks = Math.ceil(count / SEMANTIC_BLOCK);
    const full = Math.floor(count / SEMANTIC_BLOCK);
    const reduce = (v: tf.Tensor, axis: number) => tf.logSumExp(tf.div(v, t), axis, axis === 1);
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
