/**
 * Checked access to values that may be missing. Where a non-null assertion would let `undefined`
 * flow on and fail later far away, these throw at once, naming what was looked for (the policy
 * for `!` is in the README's Layout section).
 */

/** map.get(key), or an error naming `what` and the key when the map has no entry for it. */
export function getOrThrow<K, V>(map: ReadonlyMap<K, V>, key: K, what: string): V {
  const value = map.get(key);
  if (value === undefined) throw new Error(`${what}: no entry for ${describeKey(key)}`);
  return value;
}

function describeKey(key: unknown): string {
  if (typeof key === 'string') return `'${key}'`;
  return typeof key === 'object' && key !== null ? 'the given object' : String(key);
}

/** `value` itself, or an error saying that `what` is missing when it is null or undefined. */
export function required<T>(value: T | null | undefined, what: string): T {
  if (value === null || value === undefined) throw new Error(`${what} is missing`);
  return value;
}
