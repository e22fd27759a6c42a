import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { ClipTokenizer, type ClipTokenizerOptions } from './clip-tokenizer.js';

/** Largest decompressed merges file accepted (CLIP's is 1.7 MB). */
const MAX_VOCAB_BYTES = 64 * 1024 * 1024;

/** Reads a (gzipped or plain) CLIP merges file, e.g. bpe_simple_vocab_16e6.txt.gz, as text. */
export async function readClipMergesFile(path: string): Promise<string> {
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (err) {
    throw new Error(`CLIP vocabulary ${path}: cannot read it (${(err as Error).message})`);
  }
  const gzipped = raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b;
  let text: Buffer;
  try {
    text = gzipped ? gunzipSync(raw, { maxOutputLength: MAX_VOCAB_BYTES }) : raw;
  } catch (err) {
    throw new Error(
      `CLIP vocabulary ${path}: not a valid gzip file or larger than ${MAX_VOCAB_BYTES} bytes (${(err as Error).message})`,
    );
  }
  return new TextDecoder('utf-8', { fatal: true }).decode(text);
}

/** A ClipTokenizer from a merges file path (Node). */
export async function loadClipTokenizer(path: string, options: ClipTokenizerOptions = {}): Promise<ClipTokenizer> {
  const text = await readClipMergesFile(path);
  try {
    return new ClipTokenizer(text, options);
  } catch (err) {
    throw new Error(`CLIP vocabulary ${path}: ${(err as Error).message}`);
  }
}
