import { frameTokens, type TextTokenizer } from './tokenizer.js';

/** Serialised form (tokenizer.json of a model folder). */
export interface WordTokenizerJson {
  kind: 'word';
  version: 1;
  contextLength: number;
  /** Known words in id order (ids 2 .. 2 + words.length - 1). */
  words: string[];
  /** Ids reserved for unknown words, chosen by a hash of the word. */
  hashBuckets: number;
}

const PAD = 0;
const UNK = 1;
const FIRST_WORD = 2;

/**
 * The project's word-level tokenizer for small models: lower-cased NFKC text split into runs of
 * letters/digits and single punctuation marks. Known words have their own id; unknown words share
 * `hashBuckets` ids by a stable hash (or UNK when there are none). Ids: 0 pad, 1 unknown, the
 * words, the buckets, then start- and end-of-text as the two largest ids (argmax finds the end).
 */
export class WordTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly sot: number;
  readonly eot: number;
  private readonly ids = new Map<string, number>();
  private readonly firstBucket: number;

  constructor(
    readonly words: readonly string[],
    readonly hashBuckets: number,
    readonly contextLength = 16,
  ) {
    if (!Number.isInteger(hashBuckets) || hashBuckets < 0)
      throw new Error(`WordTokenizer: hashBuckets must be a non-negative integer, got ${hashBuckets}`);
    if (!Number.isInteger(contextLength) || contextLength < 2)
      throw new Error(`WordTokenizer: contextLength must be an integer >= 2, got ${contextLength}`);
    words.forEach((w, i) => {
      if (w !== normalizeWord(w) || splitWords(w).length !== 1)
        throw new Error(`WordTokenizer: vocabulary entry ${i} '${w}' is not a single normalised word`);
      if (this.ids.has(w)) throw new Error(`WordTokenizer: vocabulary entry ${i} '${w}' repeats`);
      this.ids.set(w, FIRST_WORD + i);
    });
    this.firstBucket = FIRST_WORD + words.length;
    this.sot = this.firstBucket + hashBuckets;
    this.eot = this.sot + 1;
    this.vocabSize = this.eot + 1;
  }

  /** A tokenizer with no word list: every word goes to one of vocabSize - 4 hash buckets. */
  static hashing(vocabSize: number, contextLength = 16): WordTokenizer {
    if (vocabSize < 5) throw new Error(`WordTokenizer.hashing: vocabSize must be at least 5, got ${vocabSize}`);
    return new WordTokenizer([], vocabSize - 4, contextLength);
  }

  /**
   * Builds a vocabulary from texts: the most frequent words (ties alphabetical) that occur at
   * least minCount times, so that the whole vocabulary has exactly `vocabSize` ids (the rest are buckets).
   */
  static fromTexts(
    texts: Iterable<string>,
    vocabSize: number,
    options: { contextLength?: number; minCount?: number; maxWordsShare?: number } = {},
  ): WordTokenizer {
    const counts = new Map<string, number>();
    for (const text of texts) for (const w of splitWords(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const free = vocabSize - 4;
    if (free < 1) throw new Error(`WordTokenizer.fromTexts: vocabSize must be at least 5, got ${vocabSize}`);
    // Keep some buckets for unseen words unless the caller says otherwise.
    const maxWords = Math.floor(free * (options.maxWordsShare ?? 0.9));
    const minCount = options.minCount ?? 1;
    const words = [...counts.entries()]
      .filter(([, c]) => c >= minCount)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, maxWords)
      .map(([w]) => w);
    return new WordTokenizer(words, free - words.length, options.contextLength ?? 16);
  }

  static fromJSON(json: unknown, source = 'tokenizer.json'): WordTokenizer {
    const j = json as Partial<WordTokenizerJson> | null;
    if (!j || typeof j !== 'object' || j.kind !== 'word')
      throw new Error(`${source}: not a word tokenizer (kind must be 'word')`);
    if (j.version !== 1) throw new Error(`${source}: unsupported version ${String(j.version)}`);
    if (!Array.isArray(j.words) || !j.words.every((w) => typeof w === 'string'))
      throw new Error(`${source}: 'words' must be a list of strings`);
    if (typeof j.hashBuckets !== 'number') throw new Error(`${source}: 'hashBuckets' must be a number`);
    if (typeof j.contextLength !== 'number') throw new Error(`${source}: 'contextLength' must be a number`);
    return new WordTokenizer(j.words, j.hashBuckets, j.contextLength);
  }

  toJSON(): WordTokenizerJson {
    return {
      kind: 'word',
      version: 1,
      contextLength: this.contextLength,
      words: [...this.words],
      hashBuckets: this.hashBuckets,
    };
  }

  /** Ids of the words of one text, without start/end. */
  encode(text: string): number[] {
    return splitWords(text).map(
      (w) => this.ids.get(w) ?? (this.hashBuckets > 0 ? this.firstBucket + (fnv1a(w) % this.hashBuckets) : UNK),
    );
  }

  tokenize(texts: readonly string[]): number[][] {
    return texts.map((t) => frameTokens(this.encode(t), this.sot, this.eot, this.contextLength));
  }

  static readonly PAD = PAD;
  static readonly UNK = UNK;
}

function normalizeWord(text: string): string {
  return text.normalize('NFKC').toLowerCase();
}

/** Lower-cased words (letter/digit runs) and single punctuation marks. */
export function splitWords(text: string): string[] {
  return normalizeWord(text).match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu) ?? [];
}

/** 32-bit FNV-1a over UTF-16 code units: stable across runs and platforms. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
