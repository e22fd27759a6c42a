import { tf } from '../../engine/engine.js';

/** Gradient bookkeeping between the backward pass and the optimizer. */

/** The global L2 norm over all gradients, as torch.nn.utils.clip_grad_norm_ computes it. */
export function globalNorm(grads: Map<string, tf.Tensor>): number {
  if (grads.size === 0) return 0;
  const sq = tf.tidy(() => tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))));
  const value = Math.sqrt(sq.dataSync()[0]!);
  sq.dispose();
  return value;
}

/**
 * Scales the gradients in place (disposing the old tensors) so that their global norm is at most
 * `maxNorm`; returns the norm before clipping.
 */
export function clipByGlobalNorm(grads: Map<string, tf.Tensor>, maxNorm: number): number {
  const norm = globalNorm(grads);
  if (!Number.isFinite(norm)) throw new Error(`gradient norm is ${norm}: the loss diverged`);
  if (maxNorm > 0 && norm > maxNorm) scaleGradients(grads, maxNorm / (norm + 1e-6));
  return norm;
}

export function scaleGradients(grads: Map<string, tf.Tensor>, factor: number): void {
  for (const [name, g] of grads) {
    grads.set(name, tf.tidy(() => tf.mul(g, tf.scalar(factor))));
    g.dispose();
  }
}

/** Adds `grads` into `sum` (both by name), keeping `sum`'s tensors and disposing `grads`. */
export function accumulateGradients(sum: Map<string, tf.Tensor>, grads: Map<string, tf.Tensor>): void {
  for (const [name, g] of grads) {
    const prev = sum.get(name);
    if (prev) {
      sum.set(name, tf.add(prev, g));
      prev.dispose();
      g.dispose();
    } else {
      sum.set(name, g);
    }
  }
}

export function disposeGradients(grads: Map<string, tf.Tensor>): void {
  for (const g of grads.values()) g.dispose();
  grads.clear();
}
