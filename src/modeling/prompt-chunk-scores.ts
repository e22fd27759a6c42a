/**
 * Scoring a chunk of vocabulary prompts against one image's decoder queries: the classifier's
 * alignment logits, their sigmoid, and the per-chunk statistics the semantic accumulation streams
 * over (inference/semantic-stream.ts), on prompt rows that VisionLanguageAlign.normalizePrompts
 * made (once per vocabulary: inference/vocabulary-rows.ts). Tensor work only: the ONNX export
 * records this function (and the normalisation) into small graphs per chunk width
 * (onnx/prompt-score-export.ts) that ONNX Runtime runs on every core; TF.js computes the same
 * values in the order that is fast on its kernels (query-range-scores.ts, tfjs-prompt-scorer.ts).
 */
import { tf } from '../engine/engine.js';
import type { VisionLanguageAlign } from './heads/vision-language-align.js';

/**
 * Prompt columns are reduced in blocks of this many (aligned to the first column of each series of
 * chunks), so that a chunk width that is a multiple of it gives the same sums as one chunk.
 */
export const SEMANTIC_BLOCK = 256;

/** Largest 1 / T of the fixed shift (exp(-60) is still a normal float32): beyond it the semantic statistics need TF.js's stable log-sum-exp. */
export const MAX_FIXED_SHIFT = 60;

/** Inputs of one chunk of width C (a multiple of SEMANTIC_BLOCK). */
export interface PromptChunkInputs {
  /** [Q, Dl] and [Q, 1]: the query side of the classifier (VisionLanguageAlign.queryKeys). */
  keys: tf.Tensor2D;
  offsets: tf.Tensor2D;
  /**
   * [C, Dl] prompt vectors normalised by VisionLanguageAlign.normalizePrompts (once per vocabulary,
   * not per image); rows past the chunk's prompts are padding (any finite values).
   */
  unitPrompts: tf.Tensor2D;
  /** [1, C]: 1 for a prompt, 0 for padding. */
  columns: tf.Tensor2D;
  /** [1]: 1 / T, the semantic temperature's inverse (at most MAX_FIXED_SHIFT). */
  inverseTemperature: tf.Tensor1D;
  /** [Q, 1]: exp(L_q - 1 / T), L_q the log normaliser of the columns before this chunk (0 before the first). */
  prior: tf.Tensor2D;
}

/** Outputs of one chunk (padding columns included; the caller reads the chunk's own). */
export interface PromptChunkScores {
  /** [Q, C] sigmoid of the alignment logits. */
  scores: tf.Tensor2D;
  /** [1, C]: each prompt's best score over the queries (the instance selection skips prompts that cannot pass). */
  best: tf.Tensor2D;
  /** [Q, C / SEMANTIC_BLOCK]: per block, sum of exp(s / T - 1 / T) over its prompts (padding adds 0). */
  blockSums: tf.Tensor2D;
  /** [1, C]: per prompt, sum_q exp(s / T - L'_q), L' the normaliser with this chunk: its semantic map's upper bound. */
  bound: tf.Tensor2D;
}

/**
 * The semantic statistics of a chunk of scores [Q, C]. With a fixed shift of 1 / T, exp(s / T - 1 / T)
 * never overflows (s <= 1) and, for 1 / T <= MAX_FIXED_SHIFT, never underflows, so block sums of it
 * carry the normaliser, and the bound is one GEMV against 1 / (prior + this chunk's row sums).
 */
export function chunkSemanticStats(
  scores: tf.Tensor2D,
  columns: tf.Tensor2D,
  inverseTemperature: tf.Tensor1D,
  prior: tf.Tensor2D,
): Pick<PromptChunkScores, 'blockSums' | 'bound'> {
  return tf.tidy(() => {
    const [q, c] = scores.shape;
    if (c % SEMANTIC_BLOCK !== 0)
      throw new Error(`chunkSemanticStats: ${c} columns, not a multiple of ${SEMANTIC_BLOCK}`);
    const shifted = tf.mul(tf.exp(tf.mul(tf.sub(scores, 1), inverseTemperature)), columns);
    const blockSums = tf.sum(tf.reshape(shifted, [q, c / SEMANTIC_BLOCK, SEMANTIC_BLOCK]), 2) as tf.Tensor2D;
    const inverse = tf.div(1, tf.add(prior, tf.sum(blockSums, 1, true)));
    const bound = tf.matMul(tf.reshape(inverse, [1, q]), shifted) as tf.Tensor2D;
    return { blockSums, bound };
  });
}

/** One chunk: the alignment logits' sigmoid and the semantic statistics (the same code on both engines). */
export function scorePromptChunk(head: VisionLanguageAlign, inputs: PromptChunkInputs): PromptChunkScores {
  return tf.tidy(() => {
    const scores = tf.sigmoid(
      head.scoreUnitPrompts({ keys: inputs.keys, offsets: inputs.offsets }, inputs.unitPrompts),
    );
    return {
      scores: scores as tf.Tensor2D,
      best: tf.max(scores, 0, true) as tf.Tensor2D,
      ...chunkSemanticStats(scores as tf.Tensor2D, inputs.columns, inputs.inverseTemperature, inputs.prior),
    };
  });
}

/** A chunk to score, as host values: what a scorer (either engine) takes. */
export interface PromptChunkJob {
  /** [Q * Dl] and [Q]: VisionLanguageAlign.queryKeys of one image's queries. */
  keys: Float32Array;
  offsets: Float32Array;
  /** [width * Dl]: the chunk's `count` unit rows (PromptRowsJob's answer), then padding rows. */
  unitPrompts: Float32Array;
  count: number;
  width: number;
  inverseTemperature: number;
  /** [Q] (PromptChunkInputs.prior). */
  prior: Float32Array;
}

/** Prompt vectors to normalise (VisionLanguageAlign.normalizePrompts): `width` rows, [width * Dl]. */
export interface PromptRowsJob {
  prompts: Float32Array;
  width: number;
}

/**
 * A scored chunk, as host values (row-major, `width` columns). Only the chunk's own columns are
 * defined: a padding column's score, best and bound are whatever the scorer left there.
 */
export interface PromptChunkValues {
  scores: Float32Array;
  best: Float32Array;
  blockSums: Float32Array;
  bound: Float32Array;
}

/** Scores chunks of prompts on one engine. */
export interface PromptChunkScorer {
  /**
   * Whose arithmetic `normalize` is: rows it normalised are kept under this key and reused by
   * scorers of the same key only (another engine may differ in the last bits).
   */
  readonly rowsKey: string;
  /** The width a chunk of `count` prompts runs at (count rounded up to the scorer's next width). */
  width(count: number): number;
  /** Most prompts per chunk (Infinity: any). */
  readonly maxWidth: number;
  /**
   * Whether the scorer hands unit rows to another thread: rows in shared memory (a
   * SharedArrayBuffer) are then read where they are, others are copied (VocabularyUnitRows keeps
   * them shared where the platform has SharedArrayBuffer).
   */
  readonly sharedRows?: boolean;
  /** Unit rows [width * Dl] of a chunk's prompt vectors (at one of the scorer's widths). */
  normalize(job: PromptRowsJob): Float32Array | Promise<Float32Array>;
  /** The chunk's values; they may be the scorer's own buffers, valid until its next `score`. */
  score(job: PromptChunkJob): PromptChunkValues | Promise<PromptChunkValues>;
}

/** A scorer that answers at once (TF.js). */
export interface SyncPromptChunkScorer extends PromptChunkScorer {
  normalize(job: PromptRowsJob): Float32Array;
  score(job: PromptChunkJob): PromptChunkValues;
}

/**
 * What a scoring generator asks its driver to run on the scorer (the same generator serves the
 * synchronous TF.js scorer and ONNX Runtime's asynchronous one).
 */
export type ScorerRequest = { normalize: PromptRowsJob } | { score: PromptChunkJob };
export type ScorerAnswer = Float32Array | PromptChunkValues;
export type ScorerSteps<T> = Generator<ScorerRequest, T, ScorerAnswer>;

/** Steps that normalise one chunk's prompt vectors: `yield* normalizeOn(job)` gives the unit rows. */
export function* normalizeOn(job: PromptRowsJob): ScorerSteps<Float32Array> {
  const answer = yield { normalize: job };
  if (!(answer instanceof Float32Array)) throw new Error('scorer: normalize answered with scores');
  return answer;
}

/** Steps that score one chunk: `yield* scoreOn(job)` gives its values. */
export function* scoreOn(job: PromptChunkJob): ScorerSteps<PromptChunkValues> {
  const answer = yield { score: job };
  if (answer instanceof Float32Array) throw new Error('scorer: score answered with unit rows');
  return answer;
}

/** Runs scoring steps on a synchronous scorer (TF.js). */
export function runScorerSync<T>(steps: ScorerSteps<T>, scorer: SyncPromptChunkScorer): T {
  let step = steps.next();
  while (!step.done) {
    const request = step.value;
    let answer: ScorerAnswer;
    try {
      answer = 'normalize' in request ? scorer.normalize(request.normalize) : scorer.score(request.score);
    } catch (e) {
      step = steps.throw(e);
      continue;
    }
    step = steps.next(answer);
  }
  return step.value;
}

/** Runs scoring steps on any scorer (ONNX Runtime's answers asynchronously). */
export async function runScorerAsync<T>(steps: ScorerSteps<T>, scorer: PromptChunkScorer): Promise<T> {
  let step = steps.next();
  while (!step.done) {
    const request = step.value;
    let answer: ScorerAnswer;
    try {
      answer = await ('normalize' in request ? scorer.normalize(request.normalize) : scorer.score(request.score));
    } catch (e) {
      step = steps.throw(e);
      continue;
    }
    step = steps.next(answer);
  }
  return step.value;
}
