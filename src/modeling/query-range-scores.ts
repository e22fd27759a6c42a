/**
 * A vocabulary chunk scored on TF.js for a range of the image's queries: the values of
 * scorePromptChunk (prompt-chunk-scores.ts) for those queries, computed prompt-major. On TF.js
 * wasm every pass over the [Q, C] scores is its own kernel, so their order and kind decide the
 * cost (docs/onnx.md, "Vocabulary chunks on TF.js"): the GEMM is twice as fast as unit rows
 * [C, Dl] times the keys' transpose (XNNPACK's many-rows orientation) as the other way round, a
 * maximum over the last axis beats one over the first, and the bound is a GEMV against a column.
 * The per-query values (scores, block sums) are independent of the other queries, the per-prompt
 * ones (best, bound) are a maximum and a sum over the queries, so two threads can each score half
 * of the queries and add up (tfjs-prompt-scorer.ts).
 */
import { tf } from '../engine/engine.js';
import { withTensorView } from '../engine/tensor-view.js';
import { SEMANTIC_BLOCK } from './prompt-chunk-scores.js';

/** A chunk's prompts against queries q0 .. q0 + n - 1 (the rows of PromptChunkJob for those queries). */
export interface QueryRangeJob {
  /** [n * Dl] and [n]: the range's query keys and offsets (VisionLanguageAlign.queryKeys). */
  keys: Float32Array;
  offsets: Float32Array;
  /** [n]: the range's PromptChunkInputs.prior. */
  prior: Float32Array;
  /** [count * Dl]: the chunk's unit rows, without padding. */
  unitPrompts: Float32Array;
  count: number;
  inverseTemperature: number;
}

/** The range's share of the chunk's values. */
export interface QueryRangeStats {
  /** [count]: each prompt's best score over the range's queries. */
  best: Float32Array;
  /** [blocks * n], block-major: per block of SEMANTIC_BLOCK prompts and query, sum of exp(s / T - 1 / T). */
  blockSums: Float32Array;
  /** [count]: per prompt, the range's part of sum_q exp(s / T - L'_q). */
  bound: Float32Array;
}

/** The rows of `job` for queries q0 .. q1 - 1 (views, no copy), the unit rows cut to the chunk's prompts. */
export function queryRange(job: QueryRangeJob, q0: number, q1: number): QueryRangeJob {
  const dl = job.keys.length / job.offsets.length;
  return {
    keys: job.keys.subarray(q0 * dl, q1 * dl),
    offsets: job.offsets.subarray(q0, q1),
    prior: job.prior.subarray(q0, q1),
    unitPrompts: job.unitPrompts.subarray(0, job.count * dl),
    count: job.count,
    inverseTemperature: job.inverseTemperature,
  };
}

/**
 * Scores `job` and writes its scores, query-major, into rows `firstRow ..` of `scores` ([rows,
 * width] row-major; columns past the chunk's prompts are left as they are).
 */
export function scoreQueryRange(
  job: QueryRangeJob,
  scores: Float32Array,
  width: number,
  firstRow: number,
): QueryRangeStats {
  const n = job.offsets.length;
  const { count } = job;
  const dl = job.keys.length / n;
  if (job.unitPrompts.length !== count * dl)
    throw new Error(`scoreQueryRange: ${job.unitPrompts.length} unit row values for ${count} prompts of ${dl}`);
  const outputs = tf.tidy(() => {
    const unit = tf.tensor2d(job.unitPrompts, [count, dl]);
    const keys = tf.tensor2d(job.keys, [n, dl]);
    // No clamp of the logits to +-50000 (VisionLanguageAlign's): the float32 sigmoid is already
    // exactly 0 or 1 far inside it, so the scores are the same without that pass.
    const promptScores = tf.sigmoid(tf.add(tf.matMul(unit, keys, false, true), tf.tensor2d(job.offsets, [1, n])));
    // exp(z) for z = (s - 1) / T <= 0 as sigmoid(z) / (1 - sigmoid(z)): the same value (within
    // float rounding) from XNNPACK's vectorised sigmoid, where TF.js wasm's exp is a scalar loop
    // (twice as slow); 1 - sigmoid(z) >= 1/2 loses nothing, and exp(-60) stays a normal float.
    const g = tf.sigmoid(tf.mul(tf.sub(promptScores, 1), job.inverseTemperature));
    const shifted = tf.div(g, tf.sub(1, g)) as tf.Tensor2D;
    const blockSums = blockSumsOf(shifted);
    const inverse = tf.div(1, tf.add(tf.tensor2d(job.prior, [n, 1]), tf.reshape(tf.sum(blockSums, 0), [n, 1])));
    return [promptScores, tf.max(promptScores, 1), blockSums, tf.matMul(shifted, inverse)];
  });
  try {
    const [promptScores, ...stats] = outputs as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    const [best, blockSums, bound] = stats.map((t) => t.dataSync() as Float32Array) as [
      Float32Array,
      Float32Array,
      Float32Array,
    ];
    withTensorView(promptScores, (values) => writeQueryMajor(values, count, n, scores, width, firstRow));
    return { best, blockSums, bound };
  } finally {
    tf.dispose(outputs);
  }
}

/**
 * Sums of [count, n] over blocks of SEMANTIC_BLOCK rows -> [blocks, n]. The whole blocks as an
 * average pool times the block size (exact scaling by a power of two): a sum over the middle
 * axis of [blocks, SEMANTIC_BLOCK, n] makes TF.js transpose the whole chunk first (10x slower).
 */
function blockSumsOf(x: tf.Tensor2D): tf.Tensor2D {
  const [count, n] = x.shape;
  const full = Math.floor(count / SEMANTIC_BLOCK);
  const parts: tf.Tensor2D[] = [];
  if (full > 0) {
    const pooled = tf.avgPool(
      tf.reshape(x, [1, count, 1, n]) as tf.Tensor4D,
      [SEMANTIC_BLOCK, 1],
      [SEMANTIC_BLOCK, 1],
      'valid',
    );
    parts.push(tf.reshape(tf.mul(pooled, SEMANTIC_BLOCK), [full, n]));
  }
  if (full * SEMANTIC_BLOCK < count)
    parts.push(tf.sum(tf.slice(x, [full * SEMANTIC_BLOCK, 0], [-1, n]), 0, true) as tf.Tensor2D);
  return parts.length === 1 ? parts[0]! : tf.concat(parts, 0);
}

/** Prompt-major values [count, n] -> rows firstRow .. firstRow + n - 1 of the query-major [rows, width]. */
function writeQueryMajor(
  values: Float32Array,
  count: number,
  n: number,
  out: Float32Array,
  width: number,
  firstRow: number,
): void {
  // Tiles of prompts, so that each output row's stretch and the tile's input rows stay in cache.
  const tile = 64;
  for (let c0 = 0; c0 < count; c0 += tile) {
    const c1 = Math.min(count, c0 + tile);
    for (let q = 0; q < n; q++) {
      const row = (firstRow + q) * width;
      for (let c = c0; c < c1; c++) out[row + c] = values[c * n + q]!;
    }
  }
}
