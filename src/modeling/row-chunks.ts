import { tf } from '../engine/engine.js';

/**
 * Token rows per chunk on the inference path. At 1024x1024 the released models' encoder has
 * 87,296 tokens: an FFN or fusion projection 2048 wide over all of them is a 715 MB tensor
 * (and each elementwise step makes another), more than the 4 GB wasm heap holds next to the
 * rest. 8192 rows keep those tensors at 64 MB while leaving GEMMs tall enough to run at speed.
 */
export const INFERENCE_CHUNK_ROWS = 8192;

/**
 * Runs fn on consecutive row ranges [start, start + size) of `total` rows, each range in its own
 * tidy scope (its intermediates are freed before the next range starts), and concatenates each
 * of fn's outputs along `axis`. With a single range fn runs once on the whole, unchanged.
 * Row-wise work (linear layers, norms, per-query sampling) gives the same numbers either way.
 */
export function mapRowChunks(
  total: number,
  chunkRows: number,
  axis: number,
  fn: (start: number, size: number) => tf.Tensor[],
): tf.Tensor[] {
  if (!(chunkRows >= 1)) throw new Error(`mapRowChunks: chunkRows must be at least 1, got ${chunkRows}`);
  if (total <= chunkRows) return tf.tidy(() => fn(0, total));
  const parts: tf.Tensor[][] = [];
  for (let start = 0; start < total; start += chunkRows) {
    const size = Math.min(chunkRows, total - start);
    parts.push(tf.tidy(() => fn(start, size)));
  }
  const outputs = parts[0]!.map((_, k) =>
    tf.concat(
      parts.map((p) => p[k]!),
      axis,
    ),
  );
  for (const p of parts) tf.dispose(p);
  return outputs;
}

/**
 * fn over row chunks of x: [N, C] (rows on axis 0) or [B, N, C] (tokens on axis 1, every batch
 * entry sliced alike), the results concatenated on the same axis.
 */
export function mapRows<T extends tf.Tensor2D | tf.Tensor3D>(
  x: T,
  chunkRows: number,
  fn: (rows: T) => tf.Tensor,
): tf.Tensor {
  const axis = x.rank === 3 ? 1 : 0;
  const total = x.shape[axis]!;
  if (total <= chunkRows) return fn(x);
  return mapRowChunks(total, chunkRows, axis, (start, size) => [fn(sliceRows(x, start, size))])[0]!;
}

/** Rows [start, start + size) of x along axis 1 ([B, N, ...]) or axis 0 ([N, C]). */
export function sliceRows<T extends tf.Tensor>(x: T, start: number, size: number, axis = x.rank >= 3 ? 1 : 0): T {
  const begin = x.shape.map((_, i) => (i === axis ? start : 0));
  const extent = x.shape.map((d, i) => (i === axis ? size : d));
  return tf.slice(x, begin, extent) as T;
}
