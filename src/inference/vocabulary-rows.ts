/**
 * A vocabulary's prompt rows as a scorer takes them (normalised on its engine), a chunk at a time.
 * The normalisation depends on the prompts alone, so a list is normalised once per engine: the
 * first predict gathers each chunk's vectors from the prompt cache (a lookup per name) and
 * normalises them, and the whole list's unit rows are then kept in the prompt cache
 * (PromptEmbeddingCache.keepListRows) in one array, which later predicts of the same list slice
 * (one comparison of the list, no lookups, no copies). A list longer than the cache holds is
 * gathered and normalised chunk by chunk every time, so memory stays bounded by the chunk. For a
 * scorer that hands rows to another thread (`sharedRows`), the kept rows and the padded chunks are
 * in shared memory where the platform has it (Node; a cross-origin isolated page), so that no
 * chunk is copied on the way.
 */
import { normalizeOn, type PromptChunkScorer, type ScorerSteps } from '../modeling/prompt-chunk-scores.js';
import type { PromptEmbeddingCache } from '../text/prompt-embeddings.js';
import { sharedFloats } from '../util/shared-floats.js';

export class VocabularyUnitRows {
  /** The whole list's unit rows, once kept (or found kept). */
  private kept: Float32Array | undefined;
  /** The unit rows made so far, while the list is normalised for keeping. */
  private building: Float32Array | null = null;
  /** Chunk buffers, one per width, refilled chunk after chunk. */
  private readonly buffers = new Map<number, Float32Array>();

  constructor(
    private readonly cache: PromptEmbeddingCache,
    private readonly vocabulary: readonly string[],
    private readonly scorer: PromptChunkScorer,
    private readonly dim: number,
  ) {
    this.kept = vocabulary.length > 0 ? cache.listRows(vocabulary, scorer.rowsKey) : undefined;
  }

  /** Whether the list's unit rows are kept (so that its vectors are not needed). */
  get ready(): boolean {
    return this.kept !== undefined;
  }

  /**
   * Unit rows [width * dim] of prompts start .. start + count - 1, then zero rows up to `width`
   * (one of the scorer's widths); valid until the next chunk. Chunks come in column order.
   */
  *chunk(start: number, count: number, width: number): ScorerSteps<Float32Array> {
    const d = this.dim;
    if (this.kept) {
      const rows = this.kept.subarray(start * d, (start + count) * d);
      if (count === width) return rows;
      const padded = this.buffer(width);
      padded.set(rows);
      padded.fill(0, count * d);
      return padded;
    }
    const prompts = this.buffer(width);
    this.cache.sentenceRows(this.vocabulary.slice(start, start + count), prompts);
    prompts.fill(0, count * d);
    const unit = yield* normalizeOn({ prompts, width });
    if (start === 0 && this.cache.keepsLists(this.vocabulary.length))
      this.building = this.floats(this.vocabulary.length * d);
    if (this.building) {
      this.building.set(unit.subarray(0, count * d), start * d);
      if (start + count === this.vocabulary.length) {
        this.cache.keepListRows(this.vocabulary, this.scorer.rowsKey, this.building);
        this.kept = this.building;
        this.building = null;
      }
    }
    return unit;
  }

  private buffer(width: number): Float32Array {
    let buffer = this.buffers.get(width);
    if (!buffer) {
      buffer = this.floats(width * this.dim);
      this.buffers.set(width, buffer);
    }
    return buffer;
  }

  private floats(length: number): Float32Array {
    return this.scorer.sharedRows ? sharedFloats(length) : new Float32Array(length);
  }
}
