/**
 * Reading a tensor's values without a copy: on wasm a view of the heap where they lie, elsewhere
 * (the cpu backend) dataSync's array. A host loop that reads a large tensor once (a transposition
 * into another layout) then skips dataSync's fresh array, which costs a copy and, 25 times per
 * predict for 1.6 MB, the page faults and garbage collection of a new allocation.
 */
import { tf } from './tf.js';
import { asWasm, f32View } from './patches/wasm-internals.js';

/**
 * Calls `read` with `t`'s float32 values. The view is valid only inside `read`, which must not run
 * TF.js (an allocation may grow the heap and detach it) nor keep the array.
 */
export function withTensorView<T>(t: tf.Tensor, read: (values: Float32Array) => T): T {
  if (t.dtype !== 'float32') throw new Error(`withTensorView: a ${t.dtype} tensor, float32 expected`);
  if (tf.getBackend() !== 'wasm') return read(t.dataSync() as Float32Array);
  return read(f32View(asWasm(tf.backend()), t));
}
