import { tf } from '../engine/engine.js';
import type { ClipTextEncoder, TextPooling } from './clip-text-transformer.js';
import type { TextTokenizer } from './tokenizer.js';
import { getOrThrow, required } from '../util/checked.js';
import { RecentLists } from '../util/recent-lists.js';

/** Token-level features of a list of prompts, every prompt's tokens (start to end) back to back. */
export interface PromptTokens {
  /** [T, D] token features of all prompts. */
  tokens: tf.Tensor2D;
  /** Per prompt: its first row in `tokens` and its number of rows (end token last). */
  offsets: Int32Array;
  lengths: Int32Array;
}

export interface PromptCacheStats {
  hits: number;
  misses: number;
  entries: number;
  /** Texts the text tower encoded (sentence vectors and token rows). */
  encoded: number;
  /** Sentence vectors read from the store instead of encoded. */
  stored: number;
}

/**
 * Encodes rows of token ids (as the tokenizer gives them) to one vector each, somewhere other than
 * the TF.js tower: the same tower exported to ONNX Runtime (src/onnx/ort-text-tower.ts).
 */
export type PromptRowEncoder = (
  rows: readonly (readonly number[])[],
  onProgress?: (done: number) => void,
) => Promise<Float32Array[]>;

/**
 * Encodes prompt texts to one vector each where no text tower is at hand: another process that
 * holds it (the page asks its server, src/browser/server-prompts.ts).
 */
export type PromptTextEncoder = (
  texts: readonly string[],
  onProgress?: (done: number) => void,
) => Promise<Float32Array[]>;

/** Progress of an encoding: prompts encoded so far of those that were new (`total`), after each batch. */
export type EncodeProgress = (done: number, total: number) => void;

/** New prompts from this many on are encoded with a progress display (`ape predict`, annotate, eval, serve); fewer take a moment. */
export const PROMPT_PROGRESS_FROM = 1000;

/** Where sentence vectors outlive the process (the on-disk prompt cache, src/inference/prompt-store.ts). */
export interface PromptVectorStore {
  readonly dim: number;
  /** The vectors it has for those of `texts` that it has. */
  get(texts: readonly string[]): Map<string, Float32Array>;
  put(entries: ReadonlyMap<string, Float32Array>): void;
}

/**
 * Encodes prompts one vector each (or one row per token) through the text tower, caching the
 * results by text: a vocabulary of thousands costs one encoding per model. Each prompt is
 * encoded on its own (its own padded row, a causal tower), so its vector does not depend on
 * which other prompts come with it.
 */
export class PromptEmbeddingCache {
  private readonly sentenceCache = new Map<string, Float32Array>();
  private readonly tokenCache = new Map<string, Float32Array>();
  /** Rows made from whole lists' vectors (listRows), by the maker's key; cleared with the vectors. */
  private readonly lists: RecentLists<Float32Array>;
  private hits = 0;
  private misses = 0;
  private encoded = 0;
  private stored = 0;
  private store: PromptVectorStore | null = null;
  /** Why the TF.js tower can no longer encode (its weights were released), or null. */
  private towerGone: string | null = null;

  constructor(
    private readonly encoder: ClipTextEncoder,
    private readonly tokenizer: TextTokenizer,
    readonly pooling: TextPooling,
    private readonly batchSize = 256,
    /** Entries kept per kind before the oldest are dropped. */
    private readonly maxEntries = 100_000,
  ) {
    // A list of up to maxEntries rows (the vectors memory) is kept, with room beside the largest
    // for a few small ones (a server alternating a large vocabulary and small ones keeps both).
    this.lists = new RecentLists(KEPT_LISTS, maxEntries + SMALL_LIST_ROWS);
  }

  get dim(): number {
    return this.encoder.embedDim;
  }

  stats(): PromptCacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      entries: this.sentenceCache.size + this.tokenCache.size,
      encoded: this.encoded,
      stored: this.stored,
    };
  }

  /**
   * Sentence vectors missing from memory are looked up in `store` before the tower encodes them,
   * and what the tower encodes is added to it (null: memory only).
   */
  setStore(store: PromptVectorStore | null): void {
    if (store && store.dim !== this.dim)
      throw new Error(`PromptEmbeddingCache: the store holds ${store.dim}-d vectors, the tower makes ${this.dim}`);
    this.store = store;
  }

  /**
   * From now on the TF.js tower is not run (its weights are gone): a text that is neither in
   * memory nor in the store is refused with `why`, and `prepare` is the way to encode.
   */
  towerReleased(why: string): void {
    this.towerGone = why;
  }

  /**
   * Makes sure every text's sentence vector is in memory (and in the store): those found in
   * neither are encoded by `encode` (all in one call, so that it can batch them as it likes) instead
   * of the TF.js tower. `sentences` then serves them without encoding, unless more texts than the
   * memory holds (maxEntries) pushed some out again.
   */
  prepare(texts: readonly string[], encode: PromptRowEncoder, onProgress?: EncodeProgress): Promise<void> {
    return this.prepareTexts(
      texts,
      (missing, progress) => encode(this.tokenizer.tokenize(missing), progress),
      onProgress,
    );
  }

  /** prepare, with `encode` given the missing texts themselves rather than their token ids. */
  async prepareTexts(texts: readonly string[], encode: PromptTextEncoder, onProgress?: EncodeProgress): Promise<void> {
    const missing = this.lookUp(this.sentenceCache, texts, this.store);
    if (missing.length === 0) return;
    onProgress?.(0, missing.length);
    const values = await encode(missing, onProgress && ((done) => onProgress(done, missing.length)));
    if (values.length !== missing.length)
      throw new Error(`PromptEmbeddingCache: the encoder gave ${values.length} vectors for ${missing.length} texts`);
    const fresh = new Map<string, Float32Array>();
    values.forEach((value, i) => {
      if (value.length !== this.dim)
        throw new Error(
          `PromptEmbeddingCache: the encoder gave a ${value.length}-d vector, the tower makes ${this.dim}`,
        );
      this.remember(this.sentenceCache, missing[i]!, value);
      fresh.set(missing[i]!, value);
    });
    this.encoded += missing.length;
    if (this.store) this.store.put(fresh);
  }

  clear(): void {
    this.sentenceCache.clear();
    this.tokenCache.clear();
    this.lists.clear();
  }

  /**
   * Rows kept for exactly this list of texts under `key` (keepListRows), found with one comparison
   * of the list: a vocabulary scored image after image needs no lookup per text. Counted as hits.
   */
  listRows(texts: readonly string[], key: string): Float32Array | undefined {
    const rows = this.lists.get(key, texts);
    if (rows) this.hits += texts.length;
    return rows;
  }

  /** Whether keepListRows keeps a list of `count` texts (no more than the vectors memory holds); a longer one is streamed. */
  keepsLists(count: number): boolean {
    return count <= this.maxEntries;
  }

  /**
   * Keeps rows made from the vectors of `texts` (one row per text, e.g. the vocabulary's prompt
   * rows normalised on one engine, `key` naming it) until they are cleared with the vectors, or the
   * least recently used lists are dropped: at most KEPT_LISTS lists, maxEntries + SMALL_LIST_ROWS
   * rows in all. A list longer than keepsLists allows is not kept.
   */
  keepListRows(texts: readonly string[], key: string, rows: Float32Array): void {
    if (rows.length !== texts.length * this.dim)
      throw new Error(
        `PromptEmbeddingCache: ${rows.length} values are not one ${this.dim}-d row per text of ${texts.length}`,
      );
    if (this.keepsLists(texts.length)) this.lists.set(key, texts, rows, texts.length);
  }

  /** [N, D] one embedding per text, from the cache where possible. */
  sentences(texts: readonly string[]): tf.Tensor2D {
    const flat = new Float32Array(texts.length * this.dim);
    this.sentenceRows(texts, flat);
    return tf.tensor2d(flat, [texts.length, this.dim]);
  }

  /**
   * Makes sure every text's sentence vector is in memory (and in the store), encoding those found
   * in neither on the TF.js tower, `batchSize` at a time (`onProgress` after each batch).
   */
  cacheSentences(texts: readonly string[], onProgress?: EncodeProgress): void {
    this.addMissingSentences(texts, onProgress);
  }

  /** cacheSentences, giving the vectors it read from the store or encoded. */
  private addMissingSentences(texts: readonly string[], onProgress?: EncodeProgress): Map<string, Float32Array> {
    return this.encodeMissing(
      this.sentenceCache,
      texts,
      (chunk) => this.encodeSentences(chunk),
      this.store,
      onProgress,
    );
  }

  private encodeSentences(chunk: string[]): Float32Array[] {
    const d = this.dim;
    const out = this.encoder.forward(this.tokenizer.tokenize(chunk), { pooling: this.pooling });
    const values = out.embeddings.dataSync() as Float32Array;
    out.embeddings.dispose();
    out.attentionMask.dispose();
    return chunk.map((_, i) => values.slice(i * d, (i + 1) * d));
  }

  /** Writes one embedding per text (from the cache where possible) as the first rows of `into` ([rows, D] row-major). */
  sentenceRows(texts: readonly string[], into: Float32Array): void {
    const d = this.dim;
    if (into.length < texts.length * d)
      throw new Error(`PromptEmbeddingCache: ${into.length} values cannot hold ${texts.length} ${d}-d rows`);
    // All in memory (a vocabulary scored image after image): one lookup per text.
    let found = 0;
    for (; found < texts.length; found++) {
      const value = this.sentenceCache.get(texts[found]!);
      if (value === undefined) break;
      into.set(value, found * d);
    }
    if (found === texts.length) {
      this.hits += found;
      return;
    }
    // Those in memory are taken before the new ones come in: with a full memory, adding them
    // drops the oldest entries, which may be texts of this very call.
    const held = texts.map((t) => this.sentenceCache.get(t));
    const added = this.addMissingSentences(texts);
    texts.forEach((t, i) => into.set(held[i] ?? getOrThrow(added, t, 'the sentence embedding cache'), i * d));
  }

  /** Token features (start through end token) of every text, concatenated; cached per text. */
  tokens(texts: readonly string[]): PromptTokens {
    const d = this.dim;
    const held = texts.map((t) => this.tokenCache.get(t));
    const added = this.encodeMissing(this.tokenCache, texts, (chunk) => {
      const out = this.encoder.forward(this.tokenizer.tokenize(chunk), { pooling: this.pooling, returnHidden: true });
      const hidden = required(out.lastHiddenState, "the text tower's hidden states");
      const length = hidden.shape[1];
      const values = hidden.dataSync() as Float32Array;
      tf.dispose([out.embeddings, hidden, out.attentionMask]);
      return chunk.map((_, i) => values.slice(i * length * d, (i * length + out.endTokenIdx[i]! + 1) * d));
    });
    const rows = texts.map((t, i) => held[i] ?? getOrThrow(added, t, 'the token feature cache'));
    const lengths = Int32Array.from(rows, (r) => r.length / d);
    const offsets = new Int32Array(texts.length);
    let total = 0;
    lengths.forEach((n, i) => {
      offsets[i] = total;
      total += n;
    });
    const flat = new Float32Array(total * d);
    rows.forEach((r, i) => flat.set(r, offsets[i]! * d));
    return { tokens: tf.tensor2d(flat, [total, d]), offsets, lengths };
  }

  /**
   * Counts hits and misses, then encodes the texts `cache` lacks, batchSize at a time, and stores
   * one value per text; gives the values it read from the store or encoded, by text.
   */
  private encodeMissing(
    cache: Map<string, Float32Array>,
    texts: readonly string[],
    encode: (chunk: string[]) => Float32Array[],
    store: PromptVectorStore | null = null,
    onProgress?: EncodeProgress,
  ): Map<string, Float32Array> {
    const added = new Map<string, Float32Array>();
    const missing = this.lookUp(cache, texts, store, added);
    if (missing.length === 0) return added;
    if (this.towerGone !== null)
      throw new Error(
        `PromptEmbeddingCache: cannot encode ${missing.length} prompt${missing.length === 1 ? '' : 's'} (first: '${missing[0]}'): ${this.towerGone}`,
      );
    // One shard per call: the store's files are written whole.
    const fresh = new Map<string, Float32Array>();
    onProgress?.(0, missing.length);
    for (let start = 0; start < missing.length; start += this.batchSize) {
      const chunk = missing.slice(start, start + this.batchSize);
      const values = encode(chunk);
      this.encoded += chunk.length;
      values.forEach((value, i) => {
        this.remember(cache, chunk[i]!, value);
        added.set(chunk[i]!, value);
        if (store) fresh.set(chunk[i]!, value);
      });
      onProgress?.(start + chunk.length, missing.length);
    }
    if (fresh.size > 0) store?.put(fresh);
    return added;
  }

  /** Counts hits and misses, reads what the store has into `cache` (and `read`); the texts still missing (each once). */
  private lookUp(
    cache: Map<string, Float32Array>,
    texts: readonly string[],
    store: PromptVectorStore | null,
    read?: Map<string, Float32Array>,
  ): string[] {
    let missing = unique(texts.filter((t) => !cache.has(t)));
    this.hits += texts.length - missing.length;
    this.misses += missing.length;
    if (missing.length > 0 && store) {
      const found = store.get(missing);
      this.stored += found.size;
      for (const [t, v] of found) {
        this.remember(cache, t, v);
        read?.set(t, v);
      }
      missing = missing.filter((t) => !found.has(t));
    }
    return missing;
  }

  private remember(cache: Map<string, Float32Array>, key: string, value: Float32Array): void {
    if (cache.size >= this.maxEntries) cache.delete(cache.keys().next().value as string);
    cache.set(key, value);
  }
}

/** Whole lists whose rows the cache keeps (a server alternating between a few vocabularies). */
const KEPT_LISTS = 8;
/** Rows kept beyond the largest list's: small lists (a chunk or a few) beside it. */
const SMALL_LIST_ROWS = 16_384;

function unique(texts: string[]): string[] {
  return [...new Set(texts)];
}

/**
 * Pools token rows into one vector per prompt: 'eot' takes each prompt's last row (its end
 * token), 'mean' averages its rows (start and end tokens included; + 1e-6 in the divisor as
 * APE's reduce_language_feature). tokens [B, T, D] -> [B, P, D].
 */
export function poolPromptTokens(
  tokens: tf.Tensor3D,
  offsets: Int32Array,
  lengths: Int32Array,
  pooling: TextPooling,
): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, t, d] = tokens.shape;
    const p = offsets.length;
    const weights = new Float32Array(p * t);
    for (let i = 0; i < p; i++) {
      const o = offsets[i]!;
      const n = lengths[i]!;
      if (pooling === 'eot') weights[i * t + o + n - 1] = 1;
      else for (let j = 0; j < n; j++) weights[i * t + o + j] = 1 / (n + 1e-6);
    }
    const w = tf.tensor2d(weights, [p, t]);
    if (b === 1) return tf.reshape(tf.matMul(w, tf.reshape(tokens, [t, d])), [1, p, d]) as tf.Tensor3D;
    const byToken = tf.reshape(tf.transpose(tokens, [1, 0, 2]), [t, b * d]);
    return tf.transpose(tf.reshape(tf.matMul(w, byToken), [p, b, d]), [1, 0, 2]) as tf.Tensor3D;
  });
}
