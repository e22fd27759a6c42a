/** The arrays back to back in one new array of the given type. */
export function concatArrays<T extends Uint8Array | Float32Array>(
  type: new (length: number) => T,
  parts: readonly T[],
): T {
  const out = new type(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
