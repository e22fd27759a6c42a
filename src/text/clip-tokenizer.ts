import { clipCleanText } from './text-cleaning.js';
import { frameTokens, type TextTokenizer } from './tokenizer.js';
import { getOrThrow } from '../util/checked.js';

/**
 * CLIP's byte-pair tokenizer as APE's EVA02-CLIP copy runs it (ape/modeling/text/eva02_clip/
 * tokenizer.py): clean text, split with CLIP's regex, map UTF-8 bytes to printable characters,
 * apply the first 48,894 merges, add `<start_of_text>` (49406) and `<end_of_text>` (49407).
 * Pure TypeScript: give it the merges file's text (see clip-vocab-file.ts for Node loading).
 */

export const CLIP_SOT = '<start_of_text>';
export const CLIP_EOT = '<end_of_text>';
/** Merges CLIP uses: 49152 - 256 - 2 (the file has more lines than the vocabulary takes). */
export const CLIP_MERGE_COUNT = 49152 - 256 - 2;

/** CLIP's byte -> printable-character table (GPT-2's bytes_to_unicode), in its insertion order. */
export function bytesToUnicode(): { bytes: number[]; chars: string[] } {
  const bytes: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bytes.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bytes.push(b);
  for (let b = 0xae; b <= 0xff; b++) bytes.push(b);
  const codes = [...bytes];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      codes.push(256 + n);
      n++;
    }
  }
  return { bytes, chars: codes.map((c) => String.fromCodePoint(c)) };
}

const PIECES = /<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/giu;

export interface ClipTokenizerOptions {
  contextLength?: number;
  /** Merges to use (default CLIP's 48,894). */
  mergeCount?: number;
  /** Bound on the BPE memo (cleared when full). */
  maxCacheEntries?: number;
}

export class ClipTokenizer implements TextTokenizer {
  readonly contextLength: number;
  readonly vocabSize: number;
  readonly sot: number;
  readonly eot: number;
  private readonly encoder = new Map<string, number>();
  private readonly decoder: string[] = [];
  private readonly ranks = new Map<string, number>();
  private readonly byteEncoder: string[] = new Array(256);
  private readonly byteDecoder = new Map<string, number>();
  private readonly cache = new Map<string, string[]>();
  private readonly maxCacheEntries: number;
  private readonly utf8 = new TextEncoder();

  /** `mergesText`: the decompressed bpe_simple_vocab_16e6.txt (a header line, then "a b" merges). */
  constructor(mergesText: string, options: ClipTokenizerOptions = {}) {
    this.contextLength = options.contextLength ?? 77;
    this.maxCacheEntries = options.maxCacheEntries ?? 100_000;
    const mergeCount = options.mergeCount ?? CLIP_MERGE_COUNT;
    const lines = mergesText.split('\n');
    if (lines.length < mergeCount + 1) {
      throw new Error(
        `ClipTokenizer: the merges text has ${lines.length - 1} merge lines, ${mergeCount} needed (is it the CLIP bpe_simple_vocab file?)`,
      );
    }
    const merges: [string, string][] = [];
    for (let i = 1; i <= mergeCount; i++) {
      const parts = lines[i]!.split(' ');
      if (parts.length !== 2 || !parts[0] || !parts[1])
        throw new Error(`ClipTokenizer: merges line ${i + 1} is not "a b": ${JSON.stringify(lines[i]!.slice(0, 40))}`);
      merges.push([parts[0], parts[1]]);
    }
    const { bytes, chars } = bytesToUnicode();
    bytes.forEach((b, i) => {
      this.byteEncoder[b] = chars[i]!;
      this.byteDecoder.set(chars[i]!, b);
    });
    const vocab = [...chars, ...chars.map((c) => `${c}</w>`), ...merges.map(([a, b]) => a + b), CLIP_SOT, CLIP_EOT];
    vocab.forEach((token, id) => {
      this.encoder.set(token, id);
      this.decoder.push(token);
    });
    merges.forEach(([a, b], rank) => this.ranks.set(`${a} ${b}`, rank));
    this.vocabSize = vocab.length;
    this.sot = getOrThrow(this.encoder, CLIP_SOT, 'the CLIP vocabulary');
    this.eot = getOrThrow(this.encoder, CLIP_EOT, 'the CLIP vocabulary');
  }

  /** Byte-pair merges of one pre-token (already byte-mapped); the last symbol carries '</w>'. */
  private bpe(token: string): string[] {
    if (token === CLIP_SOT || token === CLIP_EOT) return [token];
    const cached = this.cache.get(token);
    if (cached) return cached;
    const symbols = [...token];
    let word = [...symbols.slice(0, -1), `${symbols[symbols.length - 1]!}</w>`];
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const rank = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best]!;
      const second = word[best + 1]!;
      // Merge every non-overlapping occurrence of the best pair, left to right.
      const merged: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(word[i]!);
          i += 1;
        }
      }
      word = merged;
    }
    if (this.cache.size >= this.maxCacheEntries) this.cache.clear();
    this.cache.set(token, word);
    return word;
  }

  /** BPE ids of a text, without start/end tokens and without truncation. */
  encode(text: string): number[] {
    const ids: number[] = [];
    const clean = clipCleanText(text);
    for (const match of clean.matchAll(PIECES)) {
      let mapped = '';
      for (const byte of this.utf8.encode(match[0])) mapped += this.byteEncoder[byte];
      for (const piece of this.bpe(mapped)) {
        const id = this.encoder.get(piece);
        if (id === undefined) throw new Error(`ClipTokenizer: BPE produced '${piece}', which is not in the vocabulary`);
        ids.push(id);
      }
    }
    return ids;
  }

  /** One row of `contextLength` ids per text, exactly as APE's tokenize(texts, context_length=77). */
  tokenize(texts: readonly string[]): number[][] {
    return texts.map((t) => frameTokens(this.encode(t), this.sot, this.eot, this.contextLength));
  }

  /** Text of ids (start/end/padding ids included as their spellings; '</w>' becomes a space). */
  decode(ids: readonly number[]): string {
    const bytes: number[] = [];
    for (const id of ids) {
      const token = this.decoder[id];
      if (token === undefined) throw new Error(`ClipTokenizer.decode: id ${id} outside 0..${this.vocabSize - 1}`);
      for (const ch of token.replace(/<\/w>/g, ' ')) {
        const b = this.byteDecoder.get(ch);
        if (b !== undefined) bytes.push(b);
        else for (const x of this.utf8.encode(ch)) bytes.push(x);
      }
    }
    return new TextDecoder('utf-8', { fatal: false }).decode(new Uint8Array(bytes));
  }
}
