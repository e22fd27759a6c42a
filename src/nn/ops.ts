import { tf } from '../engine/engine.js';

/**
 * A copy of x that no gradient flows through (TF.js has no stopGradient). The copy goes through
 * host memory, so keep it for small tensors (boxes, selected rows); the op that produced x drops
 * out of the backward pass when nothing else uses it.
 */
export function detach<T extends tf.Tensor>(x: T): T {
  return tf.tensor(x.dataSync(), x.shape, x.dtype) as T;
}

/**
 * x - max(x) (over `axis`, kept as a size-1 axis; over all elements when undefined), the shift that
 * keeps a softmax stable. The max is taken as a constant: every softmax of the result is
 * invariant to it, so its gradient through the max is zero, and tracing it would cost an
 * Equal/Cast/Mul/Sum chain over the whole map in every backward pass. With `bias` (broadcast
 * against x) the max is that of x + bias: a large negative bias leaves an entry out of it.
 */
export function subtractMax(x: tf.Tensor, axis?: number, bias: tf.Tensor | null = null): tf.Tensor {
  const shift = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor;
    const over = bias ? tf.add(input, bias) : input;
    return {
      value: tf.sub(input, axis === undefined ? tf.max(over) : tf.max(over, axis, true)),
      gradFunc: (dy: tf.Tensor) => dy,
    };
  });
  return shift(x);
}

/** detrex inverse_sigmoid: log(x / (1 - x)) with x clamped to [0, 1] and both sides to >= eps. */
export function inverseSigmoid<T extends tf.Tensor>(x: T, eps = 1e-3): T {
  return tf.tidy(() => {
    const c = tf.clipByValue(x, 0, 1);
    return tf.log(tf.div(tf.maximum(c, eps), tf.maximum(tf.sub(1, c), eps))) as T;
  });
}

/** [B, N, heads * d] -> [B * heads, N, d] */
export function splitHeads(x: tf.Tensor, heads: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, n, c] = x.shape as [number, number, number];
    const d = c / heads;
    if (heads === 1) return tf.reshape(x, [b, n, d]) as tf.Tensor3D;
    return tf.reshape(tf.transpose(tf.reshape(x, [b, n, heads, d]), [0, 2, 1, 3]), [b * heads, n, d]) as tf.Tensor3D;
  });
}

/** [B * heads, N, d] -> [B, N, heads * d] */
export function mergeHeads(x: tf.Tensor, batch: number, heads: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [, n, d] = x.shape as [number, number, number];
    if (heads === 1) return tf.reshape(x, [batch, n, d]) as tf.Tensor3D;
    return tf.reshape(tf.transpose(tf.reshape(x, [batch, heads, n, d]), [0, 2, 1, 3]), [
      batch,
      n,
      heads * d,
    ]) as tf.Tensor3D;
  });
}

/**
 * tf.tidy for results that are not plain tensor containers (objects with null fields, class
 * instances): every tensor reachable from the result moves to the enclosing scope (as tf.tidy
 * does with its return value), everything else is disposed.
 */
export function tidyKeep<T>(fn: () => T): T {
  let result!: T;
  tf.tidy(() => {
    result = fn();
    const found: tf.Tensor[] = [];
    const seen = new Set<unknown>();
    const visit = (v: unknown): void => {
      if (v === null || typeof v !== 'object' || seen.has(v)) return;
      seen.add(v);
      if (v instanceof tf.Tensor) {
        found.push(v);
        return;
      }
      if (ArrayBuffer.isView(v)) return;
      for (const x of Array.isArray(v) ? v : Object.values(v)) visit(x);
    };
    visit(result);
    return found;
  });
  return result;
}
