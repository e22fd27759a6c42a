/**
 * Fixes to tfjs-core 4.22's gradient functions, for every backend:
 * - BatchMatMul and SquaredDifference return gradients in the broadcast shape (a [2, m, k] @
 *   b [k, n] gives db [2, k, n]), which backprop then rejects; they are summed back here.
 * - Prod fails for a negative axis; the axis is normalised first.
 * - Comparisons (Greater, Less, Equal, ...) have no gradient, so tf.where(tf.greater(x, 0), ...)
 *   cannot be differentiated in x; they get the zero gradient TensorFlow gives them.
 * - TopK has none; its values' gradient is scattered back to the chosen positions.
 * The wrappers need tfjs-core's gradients loaded first (src/engine/gradients-node.ts); loading
 * those again afterwards replaces the wrapped ones, so initEngine re-applies this on every call.
 */
import { tf } from './tf.js';
import { required } from '../util/checked.js';

/** Sums g over the leading dims it has beyond `shape` and over dims where `shape` has 1. */
export function sumToShape(g: tf.Tensor, shape: readonly number[]): tf.Tensor {
  if (tf.util.arraysEqual(g.shape, shape as number[])) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return tf.reshape(tf.sum(g, axes), shape as number[]);
}

type GradMap = ReturnType<tf.GradConfig['gradFunc']>;
const wrappers = new WeakSet<tf.GradConfig['gradFunc']>();

/** Replaces a registered gradient by `wrap(stockGradFunc)`, once (a no-op when absent). */
function wrapGradient(kernelName: string, wrap: (stock: tf.GradConfig['gradFunc']) => tf.GradConfig['gradFunc']): void {
  const stock = tf.getGradient(kernelName);
  if (!stock || wrappers.has(stock.gradFunc)) return;
  const gradFunc = wrap(stock.gradFunc);
  wrappers.add(gradFunc);
  tf.registerGradient({ ...stock, gradFunc });
}

function reduceBroadcast(stock: tf.GradConfig['gradFunc']): tf.GradConfig['gradFunc'] {
  return (dy, saved, attrs) => {
    const [a, b] = saved as [tf.Tensor, tf.Tensor];
    const grads = stock(dy, saved, attrs);
    return {
      a: () => sumToShape(required(grads.a, 'the stock gradient of input a')(), a.shape),
      b: () => sumToShape(required(grads.b, 'the stock gradient of input b')(), b.shape),
    };
  };
}

function normalisedProdAxis(stock: tf.GradConfig['gradFunc']): tf.GradConfig['gradFunc'] {
  return (dy, saved, attrs) => {
    const [x] = saved as [tf.Tensor];
    const axis = attrs.axis as number | number[] | null | undefined;
    const fixed = axis === undefined || axis === null ? axis : tf.util.parseAxisParam(axis, x.shape);
    return stock(dy, saved, { ...attrs, axis: fixed as number[] });
  };
}

const COMPARISONS = ['Greater', 'Less', 'LessEqual', 'Equal', 'NotEqual', 'LogicalAnd', 'LogicalOr', 'LogicalNot'];

function registerIfAbsent(config: tf.GradConfig): void {
  if (!tf.getGradient(config.kernelName)) tf.registerGradient(config);
}

function topKGradFunc(dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]): GradMap {
  const [x, indices] = saved as [tf.Tensor, tf.Tensor];
  const dValues = (dy as (tf.Tensor | null)[])[0];
  return {
    x: () => {
      if (!dValues) return tf.zerosLike(x);
      const n = x.shape[x.rank - 1]!;
      const rows = x.size / n;
      const k = indices.shape[indices.rank - 1]!;
      const rowStart = tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(n, 'int32'));
      const flat = tf.add(tf.reshape(indices, [rows, k]), tf.reshape(rowStart, [rows, 1]));
      const dx = tf.unsortedSegmentSum(tf.reshape(dValues, [-1]), tf.reshape(flat, [-1]), rows * n);
      return tf.reshape(dx, x.shape);
    },
  };
}

export function registerCoreGradientFixes(): void {
  wrapGradient('BatchMatMul', reduceBroadcast);
  wrapGradient('SquaredDifference', reduceBroadcast);
  wrapGradient('Prod', normalisedProdAxis);
  for (const kernelName of COMPARISONS) {
    registerIfAbsent({
      kernelName,
      inputsToSave: kernelName === 'LogicalNot' ? ['x'] : ['a', 'b'],
      gradFunc: (_dy, saved): GradMap =>
        kernelName === 'LogicalNot'
          ? { x: () => tf.zerosLike(saved[0]!) }
          : { a: () => tf.zerosLike(saved[0]!), b: () => tf.zerosLike(saved[1]!) },
    });
  }
  registerIfAbsent({ kernelName: 'TopK', inputsToSave: ['x'], outputsToSave: [false, true], gradFunc: topKGradFunc });
}
