import { tf } from '../engine/engine.js';
import { readValues } from '../engine/read-values.js';

/**
 * Queries whose mask logits are copied to the host at a time: bounds that copy (64 maps of
 * 256 x 256 floats, 16 MB, for the released models at 1024).
 */
export const MASK_READ_QUERIES = 64;

/**
 * Calls `visit` with the mask logits [h * w] of each of `queries` in image `image` of
 * `masks` [B, Q, h, w], in increasing query order, gathered from the tensor
 * MASK_READ_QUERIES at a time. Not one slice per query: TF.js wasm's slice kernel copies its
 * whole input to the host on every call (ape-ti at 1024: 236 MB per instance mask).
 */
export function forEachQueryMask(
  masks: tf.Tensor4D,
  image: number,
  queries: Iterable<number>,
  visit: (query: number, logits: Float32Array) => void,
): void {
  const [b, q, h, w] = masks.shape;
  if (!(image >= 0 && image < b)) throw new Error(`forEachQueryMask: image ${image} outside 0..${b - 1}`);
  const sorted = [...new Set(queries)].sort((x, y) => x - y);
  for (const query of sorted)
    if (!(Number.isInteger(query) && query >= 0 && query < q))
      throw new Error(`forEachQueryMask: query ${query} outside 0..${q - 1}`);
  const cells = h * w;
  for (let start = 0; start < sorted.length; start += MASK_READ_QUERIES) {
    const part = sorted.slice(start, start + MASK_READ_QUERIES);
    const values = readValues(() =>
      tf.gather(
        tf.reshape(masks, [b * q, cells]),
        tf.tensor1d(
          part.map((query) => image * q + query),
          'int32',
        ),
      ),
    );
    part.forEach((query, k) => visit(query, values.subarray(k * cells, (k + 1) * cells)));
  }
}

/** Image `image`'s mask logits [Q, h * w] of masks [B, Q, h, w] (a reshape when B is 1, no copy of the others). */
export function imageMaskLogits(masks: tf.Tensor4D, image: number): tf.Tensor2D {
  const [b, q, h, w] = masks.shape;
  return tf.tidy(() =>
    b === 1
      ? (tf.reshape(masks, [q, h * w]) as tf.Tensor2D)
      : (tf.reshape(tf.gather(masks, tf.tensor1d([image], 'int32')), [q, h * w]) as tf.Tensor2D),
  );
}
