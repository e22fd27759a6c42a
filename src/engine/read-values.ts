import { tf } from './engine.js';

/** Host copy of a tensor computed for reading only (the tensor and its intermediates are disposed). */
export function readValues(fn: () => tf.Tensor): Float32Array {
  const t = tf.tidy(fn);
  const values = t.dataSync() as Float32Array;
  t.dispose();
  return values;
}
