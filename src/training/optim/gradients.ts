/** Gradient bookkeeping between the backward pass and the optimizer, on host arrays. */

/** The global L2 norm over all gradients, as torch.nn.utils.clip_grad_norm_ computes it. */
export function globalNorm(grads: Map<string, Float32Array>): number {
  let sum = 0;
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) sum += g[i]! * g[i]!;
  return Math.sqrt(sum);
}

/**
 * The factor that brings a global gradient norm down to `maxNorm` (1 when it is below, or when
 * clipping is off), as clip_grad_norm_ scales.
 */
export function clipFactor(norm: number, maxNorm: number): number {
  if (!Number.isFinite(norm)) throw new Error(`gradient norm is ${norm}: the loss diverged`);
  return maxNorm > 0 && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
}

/** Adds `grads` into `sum` by name (taking ownership of arrays it has not seen). */
export function accumulateGradients(sum: Map<string, Float32Array>, grads: Map<string, Float32Array>): void {
  for (const [name, g] of grads) {
    const prev = sum.get(name);
    if (!prev) {
      sum.set(name, g);
      continue;
    }
    for (let i = 0; i < g.length; i++) prev[i]! += g[i]!;
  }
}
