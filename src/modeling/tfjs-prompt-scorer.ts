/**
 * The TF.js prompt chunk scorer: scorePromptChunk's values (prompt-chunk-scores.ts) computed by
 * scoreQueryRange (query-range-scores.ts), on this thread alone or with a second thread that
 * scores half of the queries meanwhile (Node: inference/scoring-thread.ts). TF.js wasm runs one
 * thread per backend, so the second core is otherwise idle while a vocabulary is scored.
 */
import { tf } from '../engine/engine.js';
import { required } from '../util/checked.js';
import { sharedFloats } from '../util/shared-floats.js';
import type { VisionLanguageAlign } from './heads/vision-language-align.js';
import { SEMANTIC_BLOCK, type PromptChunkValues, type SyncPromptChunkScorer } from './prompt-chunk-scores.js';
import { type QueryRangeJob, type QueryRangeStats, queryRange, scoreQueryRange } from './query-range-scores.js';

/** Another thread that scores some of a chunk's queries while the caller scores the others. */
export interface QueryRangeThread {
  /** Whether it takes part of a chunk of `count` prompts now (it is started, and the hand-off pays at that size). */
  takes(count: number): boolean;
  /**
   * Starts scoring `job` into rows firstRow .. firstRow + n - 1 of `scores` ([rows, width], the
   * chunk's columns); the function returned waits until they are written and gives the stats.
   */
  begin(job: QueryRangeJob, scores: Float32Array, width: number, firstRow: number): () => QueryRangeStats;
  /** Ends the thread. */
  dispose(): void;
}

/** The TF.js scorer: a chunk padded to the next multiple of SEMANTIC_BLOCK, half its queries on `thread` when it takes them. */
export function tfjsPromptScorer(
  head: VisionLanguageAlign,
  thread: QueryRangeThread | null = null,
): SyncPromptChunkScorer {
  const dl = head.embedDimLanguage;
  // The values of the last widths scored, refilled chunk after chunk (a chunk's values are read
  // before the next is scored): 1.6 MB of scores per chunk of 4,096 prompts not made anew. With a
  // thread, the scores are in shared memory, where the thread writes its rows itself.
  const buffers = new Map<string, PromptChunkValues>();
  const valuesFor = (q: number, width: number): PromptChunkValues => {
    const key = `${q}x${width}`;
    let values = buffers.get(key);
    if (!values) {
      values = {
        scores: thread ? sharedFloats(q * width) : new Float32Array(q * width),
        best: new Float32Array(width),
        blockSums: new Float32Array(q * (width / SEMANTIC_BLOCK)),
        bound: new Float32Array(width),
      };
      // Two sizes at most: a vocabulary's whole chunks and its last one.
      if (buffers.size >= 2) buffers.delete(required(buffers.keys().next().value, 'the oldest width'));
      buffers.set(key, values);
    }
    return values;
  };
  return {
    rowsKey: `tfjs-${tf.getBackend()}`,
    sharedRows: thread !== null,
    width: (count) => Math.ceil(count / SEMANTIC_BLOCK) * SEMANTIC_BLOCK,
    maxWidth: Infinity,
    normalize(job) {
      const prompts = tf.tensor2d(job.prompts, [job.width, dl]);
      const unit = head.normalizePrompts(prompts);
      try {
        return unit.dataSync() as Float32Array;
      } finally {
        tf.dispose([prompts, unit]);
      }
    },
    score(job) {
      const q = job.offsets.length;
      const { count, width } = job;
      const helper = q > 1 && thread?.takes(count) ? thread : null;
      const split = helper ? Math.ceil(q / 2) : q;
      const values = valuesFor(q, width);
      const wait = helper ? helper.begin(queryRange(job, split, q), values.scores, width, split) : null;
      let own: QueryRangeStats;
      try {
        own = scoreQueryRange(queryRange(job, 0, split), values.scores, width, 0);
      } catch (e) {
        // The thread's answer is awaited even so (this error is the one to report): the thread
        // must be idle before the next chunk.
        try {
          wait?.();
        } catch {
          // reported above
        }
        throw e;
      }
      addRange(values, own, 0, split, count, width);
      if (wait) addRange(values, wait(), split, q, count, width);
      return values;
    },
  };
}

/** Adds the stats of queries q0 .. q1 - 1 into a chunk's values (best as a maximum, bound as a sum). */
function addRange(
  values: PromptChunkValues,
  range: QueryRangeStats,
  q0: number,
  q1: number,
  count: number,
  width: number,
): void {
  const n = q1 - q0;
  const stride = width / SEMANTIC_BLOCK;
  const blocks = Math.ceil(count / SEMANTIC_BLOCK);
  const first = q0 === 0;
  for (let c = 0; c < count; c++) {
    values.best[c] = first ? range.best[c]! : Math.max(values.best[c]!, range.best[c]!);
    values.bound[c] = first ? range.bound[c]! : values.bound[c]! + range.bound[c]!;
  }
  for (let b = 0; b < blocks; b++)
    for (let i = 0; i < n; i++) values.blockSums[(q0 + i) * stride + b] = range.blockSums[b * n + i]!;
}
