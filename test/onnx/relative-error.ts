import assert from 'node:assert/strict';

/**
 * max |a - b| / max |b| over the finite entries of b: the error relative to the output's scale.
 * Where b is not finite (APE's +inf proposal boxes at padding) a must be equal; a NaN in a, or a
 * non-finite entry of b that a does not equal, makes the error Infinity.
 */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(b[i]!)) {
      if (!Object.is(a[i], b[i])) return Infinity;
      continue;
    }
    const d = Math.abs(a[i]! - b[i]!);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  assert.ok(scale > 0);
  return diff / scale;
}
