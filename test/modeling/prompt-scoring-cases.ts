/** Random chunks to score, and the recorded form's values to compare a scorer with (tests of the TF.js scorers). */
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/engine.js';
import { VisionLanguageAlign } from '../../src/modeling/heads/vision-language-align.js';
import {
  type PromptChunkJob,
  type PromptChunkValues,
  SEMANTIC_BLOCK,
  scorePromptChunk,
} from '../../src/modeling/prompt-chunk-scores.js';
import { Rng } from '../../src/util/random.js';
import { relativeError } from '../onnx/relative-error.js';

export const Q = 9;
const D = 12;
export const DL = 16;

/** A classifier with random weights and biases, the query keys of random queries, and a random generator. */
export function scoringCase(queries = Q): { head: VisionLanguageAlign; keys: Float32Array; offsets: Float32Array } {
  const head = new VisionLanguageAlign(D, DL, new Rng(7));
  head.logScale.assign(tf.tensor1d([-1.1]));
  head.biasLang.assign(tf.randomNormal([DL], 0, 0.5, 'float32', 8));
  head.bias0.assign(tf.tensor1d([-0.3]));
  const hidden = tf.randomNormal([queries, D], 0, 1.5, 'float32', 9) as tf.Tensor2D;
  const k = head.queryKeys(hidden);
  const keys = k.keys.dataSync() as Float32Array;
  const offsets = k.offsets.dataSync() as Float32Array;
  tf.dispose([hidden, k.keys, k.offsets]);
  return { head, keys, offsets };
}

/** `count` unit rows (row 1 all zero, as normalizePrompts leaves a zero prompt), then padding rows of large values. */
export function unitRows(head: VisionLanguageAlign, count: number, width: number, seed = 5): Float32Array {
  const vectors = tf.tidy(() => {
    const raw = tf.randomNormal([count, DL], 0, 1, 'float32', seed);
    const zero = tf.concat([tf.ones([1, DL]), tf.zeros([1, DL]), tf.ones([count - 2, DL])]);
    return head.normalizePrompts(tf.mul(raw, zero) as tf.Tensor2D);
  });
  const rows = new Float32Array(width * DL);
  rows.set(vectors.dataSync());
  vectors.dispose();
  for (let i = count * DL; i < rows.length; i++) rows[i] = ((i % 7) - 3) * 1e3;
  return rows;
}

/** scorePromptChunk (the recorded ONNX form) run eagerly, as host values. */
export function recordedForm(head: VisionLanguageAlign, job: PromptChunkJob): PromptChunkValues {
  const q = job.offsets.length;
  const columns = new Float32Array(job.width).fill(1, 0, job.count);
  const inputs = {
    keys: tf.tensor2d(job.keys, [q, DL]),
    offsets: tf.tensor2d(job.offsets, [q, 1]),
    unitPrompts: tf.tensor2d(job.unitPrompts, [job.width, DL]),
    columns: tf.tensor2d(columns, [1, job.width]),
    inverseTemperature: tf.tensor1d([job.inverseTemperature]),
    prior: tf.tensor2d(job.prior, [q, 1]),
  };
  const out = scorePromptChunk(head, inputs);
  const values = {
    scores: out.scores.dataSync() as Float32Array,
    best: out.best.dataSync() as Float32Array,
    blockSums: out.blockSums.dataSync() as Float32Array,
    bound: out.bound.dataSync() as Float32Array,
  };
  tf.dispose([...Object.values(inputs), ...Object.values(out)]);
  return values;
}

/** The chunk's own columns of [rows, width] values (padding columns are not defined). */
export function ownColumns(values: Float32Array, rows: number, width: number, count: number): Float32Array {
  return Float32Array.from({ length: rows * count }, (_, i) => values[Math.floor(i / count) * width + (i % count)]!);
}

/**
 * Asserts that `values` are `want`'s on the chunk's columns: scores and best to the bit (the same
 * sigmoid of the same GEMM), the semantic sums within float rounding of their other summation order.
 */
export function assertSameValues(
  values: PromptChunkValues,
  want: PromptChunkValues,
  job: PromptChunkJob,
  what: string,
) {
  const q = job.offsets.length;
  const { count, width } = job;
  const stride = width / SEMANTIC_BLOCK;
  const blocks = Math.ceil(count / SEMANTIC_BLOCK);
  assert.deepEqual(
    ownColumns(values.scores, q, width, count),
    ownColumns(want.scores, q, width, count),
    `${what}: scores`,
  );
  assert.deepEqual(values.best.subarray(0, count), want.best.subarray(0, count), `${what}: best`);
  const sums = relativeError(
    ownColumns(values.blockSums, q, stride, blocks),
    ownColumns(want.blockSums, q, stride, blocks),
  );
  assert.ok(sums <= 2e-6, `${what}: block sums differ by ${sums} relative`);
  const bound = relativeError(values.bound.subarray(0, count), want.bound.subarray(0, count));
  assert.ok(bound <= 2e-6, `${what}: bound differs by ${bound} relative`);
  assert.equal(values.scores.length, q * width);
  assert.equal(values.blockSums.length, q * stride);
}

/** A job of `count` prompts at the scorer's width, a prior per query. */
export function chunkJob(
  c: ReturnType<typeof scoringCase>,
  count: number,
  inverseTemperature: number,
  priorScale: number,
): PromptChunkJob {
  const width = Math.ceil(count / SEMANTIC_BLOCK) * SEMANTIC_BLOCK;
  const q = c.offsets.length;
  return {
    keys: c.keys,
    offsets: c.offsets,
    unitPrompts: unitRows(c.head, count, width),
    count,
    width,
    inverseTemperature,
    prior: Float32Array.from({ length: q }, (_, i) => priorScale * (i + 1)),
  };
}
