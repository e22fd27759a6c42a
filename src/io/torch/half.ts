/**
 * IEEE half (binary16) and bfloat16 bit patterns to float32. Both widen exactly, so the work is
 * bit manipulation on the float32 patterns (NaN payloads kept).
 */

/** float32 bit pattern of a binary16 bit pattern. */
export function halfBitsToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  let frac = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (frac << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (frac << 13)) >>> 0;
  if (frac === 0) return sign >>> 0;
  // Subnormal half: shift the fraction up until its leading bit becomes the implicit one.
  let e = 113;
  while (!(frac & 0x400)) {
    frac <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((frac & 0x3ff) << 13)) >>> 0;
}

export function halfArrayToFloat32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) bits[i] = halfBitsToFloatBits(src[i]!);
  return out;
}

export function bfloat16ArrayToFloat32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return out;
}
