/** What a text encoder needs from a tokenizer: fixed-length id rows with start/end tokens. */
export interface TextTokenizer {
  /** Number of ids (embedding rows) the tokenizer can produce. */
  readonly vocabSize: number;
  readonly contextLength: number;
  /** Start-of-text and end-of-text ids; the end id is the largest id, so argmax finds it. */
  readonly sot: number;
  readonly eot: number;
  /** One row of `contextLength` ids per text: [sot, ...tokens, eot, 0, 0, ...] (truncated keeping eot last). */
  tokenize(texts: readonly string[]): number[][];
}

/**
 * CLIP's truncation and padding: [sot] + tokens + [eot], cut to `contextLength` with the last id
 * forced to eot, zero-padded.
 */
export function frameTokens(tokens: readonly number[], sot: number, eot: number, contextLength: number): number[] {
  if (!(contextLength >= 2)) throw new Error(`frameTokens: context length must be at least 2, got ${contextLength}`);
  const row = [sot, ...tokens, eot];
  if (row.length > contextLength) {
    row.length = contextLength;
    row[contextLength - 1] = eot;
  }
  while (row.length < contextLength) row.push(0);
  return row;
}
