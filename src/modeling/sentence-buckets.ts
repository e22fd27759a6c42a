/**
 * Sentence-count buckets: a graph made for a fixed number of sentence rows serves any count up to
 * it, the rows past the real sentences being padding that the fusion masks out (the data input
 * SENTENCE_KEEP_INPUT, FusionRunOptions.textKeep), so the bucket never changes a result.
 */

/** The data input (src/engine/graph-inputs.ts) of the fusion's text mask: [rows] 1 real, 0 padding. */
export const SENTENCE_KEEP_INPUT = 'sentence_keep';

/** The sentence rows a graph is made for to serve `count` sentences: 0, or the next power of two (1, 2, 4, 8, ...). */
export function sentenceBucket(count: number): number {
  if (!Number.isInteger(count) || count < 0)
    throw new Error(`sentenceBucket: a sentence count must be a whole number, got ${count}`);
  return count === 0 ? 0 : 2 ** Math.ceil(Math.log2(count));
}

/** [rows]: 1 for the first `real` rows, 0 for the padding after them. */
export function sentenceKeepMask(real: number, rows: number): Float32Array {
  if (!(Number.isInteger(real) && real >= 0 && real <= rows))
    throw new Error(`sentenceKeepMask: ${real} real sentences do not fit ${rows} rows`);
  return new Float32Array(rows).fill(1, 0, real);
}

/**
 * `rows` sentence embeddings of width `dim` from the real ones (`values`, [n, dim], n >= 1): the
 * last real row repeated into the padding (any finite row would do, as the mask hides them; a copy
 * keeps every norm and normalisation of the padded rows finite).
 */
export function padSentenceRows(values: Float32Array, dim: number, rows: number): Float32Array {
  const n = values.length / dim;
  if (!(Number.isInteger(n) && n >= 1 && n <= rows))
    throw new Error(`padSentenceRows: ${values.length} values are not 1 to ${rows} rows of ${dim}`);
  if (n === rows) return values;
  const out = new Float32Array(rows * dim);
  out.set(values);
  const last = values.subarray((n - 1) * dim);
  for (let r = n; r < rows; r++) out.set(last, r * dim);
  return out;
}
