/**
 * The TF.js prompt chunk scorer: scorePromptChunk's values (prompt-chunk-scores.ts) computed by
 * scoreQueryRange (query-range-scores.ts), on this thread alone or with a second thread that
 * scores half of the queries meanwhile (Node: inference/scoring-thread.ts). TF.js wasm runs one
 * thread per backend, so the second core is otherwise idle while a vocabulary is scored.
 */
import { tf } from '../engine/engine.js';
import type { VisionLanguageAlign } from './heads/vision-language-align.js';
import { SEMANTIC_BLOCK, type PromptChunkValues, type SyncPromptChunkScorer } from './prompt-chunk-scores.js';
import { type QueryRangeJob, type QueryRangeStats, queryRange, scoreQueryRange } from './query-range-scores.js';

/** A range's stats and its scores, rows [n, width] query-major (only the chunk's columns are read). */
export interface QueryRangeAnswer extends QueryRangeStats {
  scores: Float32Array;
}

/** Another thread that scores some of a chunk's queries while the caller scores the others. */
export interface QueryRangeThread {
  /** Whether it takes part of a chunk of `count` prompts now (it is started, and the hand-off pays at that size). */
  takes(count: number): boolean;
  /** Starts scoring `job` (its scores as rows [n, width]); the function returned waits for the answer. */
  begin(job: QueryRangeJob, width: number): () => QueryRangeAnswer;
  /** Ends the thread. */
  dispose(): void;
}

/** The TF.js scorer: a chunk padded to the next multiple of SEMANTIC_BLOCK, half its queries on `thread` when it takes them. */
export function tfjsPromptScorer(
  head: VisionLanguageAlign,
  thread: QueryRangeThread | null = null,
): SyncPromptChunkScorer {
  const dl = head.embedDimLanguage;
  return {
    rowsKey: `tfjs-${tf.getBackend()}`,
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
      const wait = helper ? helper.begin(queryRange(job, split, q), width) : null;
      const scores = new Float32Array(q * width);
      let own: QueryRangeStats;
      try {
        own = scoreQueryRange(queryRange(job, 0, split), scores, width, 0);
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
      const values: PromptChunkValues = {
        scores,
        best: new Float32Array(width),
        blockSums: new Float32Array(q * (width / SEMANTIC_BLOCK)),
        bound: new Float32Array(width),
      };
      addRange(values, own, 0, split, count, width);
      if (wait) {
        const other = wait();
        // Row by row: the thread's padding columns hold whatever its buffer held before.
        for (let r = 0; r < q - split; r++)
          scores.set(other.scores.subarray(r * width, r * width + count), (split + r) * width);
        addRange(values, other, split, q, count, width);
      }
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
