/**
 * The three chained Tensor methods that tfjs-core's own gradient of gather with batchDims = 1
 * calls (x.split, t.slice, t.reshape). tfjs-core alone does not define chained methods (the
 * umbrella @tensorflow/tfjs package does), so without these that gradient throws. Defined only
 * where missing; project code keeps using the functional style.
 */
import { tf } from './tf.js';

type Methods = {
  split(this: tf.Tensor, numOrSizeSplits: number[] | number, axis?: number): tf.Tensor[];
  slice(this: tf.Tensor, begin: number | number[], size?: number | number[]): tf.Tensor;
  reshape(this: tf.Tensor, shape: number[]): tf.Tensor;
};

export function defineGradientTensorMethods(): void {
  const proto = tf.Tensor.prototype as unknown as Partial<Methods>;
  if (typeof proto.split !== 'function') {
    proto.split = function (numOrSizeSplits, axis) {
      return tf.split(this, numOrSizeSplits, axis);
    };
  }
  if (typeof proto.slice !== 'function') {
    proto.slice = function (begin, size) {
      return tf.slice(this, begin, size);
    };
  }
  if (typeof proto.reshape !== 'function') {
    proto.reshape = function (shape) {
      return tf.reshape(this, shape);
    };
  }
}
