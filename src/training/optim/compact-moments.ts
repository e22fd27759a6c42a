/**
 * AdamW moments in 8 bits per value, for resume checkpoints that fit a repository commit.
 *
 * What the next update reads is the ratio m / sqrt(v) (the step direction) and v's magnitude, so
 * those are what is kept: v as 8-bit codes of ln v on a per-block grid (a relative error bounded
 * whatever the block's dynamic range; plain linear codes would round the small v of a block to
 * zero and turn its updates into m / eps), and m as r = m / sqrt(v) in signed 8-bit codes scaled
 * by the block's largest |r| (an error of at most half a code of the block's largest step,
 * whatever v's error, since the decoded m is r times the decoded sqrt(v)). On the 7.1M-parameter
 * detector checkpoint of phase 2 the decoded update direction is within 0.69% (relative L2) of
 * the float32 one; bf16 moments would be within 0.19% at twice the bytes, which puts the
 * detector's checkpoint at 57 MB, over what a commit may add (docs/training.md).
 */

/** Values per block: each block of a tensor has its own scales. */
export const MOMENT_BLOCK = 256;

/** Moments of one parameter in 8-bit codes. */
export interface CompactMoments {
  /** 0 is exactly 0; code c >= 1 stands for exp(low + (c - 1) * step) with its block's (low, step). */
  vCodes: Uint8Array;
  /** Per block: low, step (ln v). */
  vRanges: Float32Array;
  /** r = m / sqrt(v) is code * scale / 127 with its block's scale. */
  rCodes: Int8Array;
  /** Per block: the largest |r|. */
  rScales: Float32Array;
}

export function momentBlocks(length: number): number {
  return Math.ceil(length / MOMENT_BLOCK);
}

/** Encodes one parameter's moments; `name` only labels the error for a non-finite value. */
export function encodeMoments(m: Float32Array, v: Float32Array, name = 'moments'): CompactMoments {
  if (m.length !== v.length) throw new Error(`${name}: m has ${m.length} values, v ${v.length}`);
  const n = m.length;
  const blocks = momentBlocks(n);
  const out: CompactMoments = {
    vCodes: new Uint8Array(n),
    vRanges: new Float32Array(2 * blocks),
    rCodes: new Int8Array(n),
    rScales: new Float32Array(blocks),
  };
  const ratio = new Float64Array(MOMENT_BLOCK);
  for (let b = 0; b < blocks; b++) {
    const start = b * MOMENT_BLOCK;
    const end = Math.min(n, start + MOMENT_BLOCK);
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = start; i < end; i++) {
      const vi = v[i]!;
      const mi = m[i]!;
      if (!Number.isFinite(vi) || vi < 0 || !Number.isFinite(mi))
        throw new Error(`${name}: moment value ${i} is not finite (m ${mi}, v ${vi}); nothing to encode`);
      if (vi > 0) {
        const l = Math.log(vi);
        if (l < lo) lo = l;
        if (l > hi) hi = l;
      }
    }
    // The grid is kept in float32 (as stored), and the codes are taken on that grid.
    const low = lo === Infinity ? 0 : Math.fround(lo);
    const step = hi > low ? Math.fround((hi - low) / 254) : 0;
    out.vRanges[2 * b] = low;
    out.vRanges[2 * b + 1] = step;
    let scale = 0;
    for (let i = start; i < end; i++) {
      const vi = v[i]!;
      if (vi === 0) continue; // v underflowed to 0: m is below float32's squares too, kept as 0
      out.vCodes[i] = (step > 0 ? Math.min(254, Math.max(0, Math.round((Math.log(vi) - low) / step))) : 0) + 1;
      ratio[i - start] = m[i]! / Math.sqrt(vi);
      scale = Math.max(scale, Math.abs(ratio[i - start]!));
    }
    // The ratio of the exact moments: decoded, m / sqrt(v) is it to within half a code, whatever v's error.
    scale = Math.fround(scale);
    out.rScales[b] = scale;
    if (scale === 0) continue;
    for (let i = start; i < end; i++)
      if (v[i] !== 0) out.rCodes[i] = Math.max(-127, Math.min(127, Math.round((ratio[i - start]! * 127) / scale)));
  }
  return out;
}

/** Decodes one parameter's moments; a code tensor whose length disagrees with its scales is an error naming `name`. */
export function decodeMoments(c: CompactMoments, name = 'moments'): { m: Float32Array; v: Float32Array } {
  const n = c.vCodes.length;
  const blocks = momentBlocks(n);
  if (c.rCodes.length !== n || c.vRanges.length !== 2 * blocks || c.rScales.length !== blocks)
    throw new Error(
      `${name}: the 8-bit moments do not fit together (${n} v codes, ${c.rCodes.length} m codes, ${c.vRanges.length / 2} v ranges and ${c.rScales.length} m scales for ${blocks} blocks of ${MOMENT_BLOCK})`,
    );
  const m = new Float32Array(n);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const code = c.vCodes[i]!;
    if (code === 0) continue;
    const b = Math.floor(i / MOMENT_BLOCK);
    const vi = Math.fround(Math.exp(c.vRanges[2 * b]! + (code - 1) * c.vRanges[2 * b + 1]!));
    v[i] = vi;
    m[i] = ((c.rCodes[i]! * c.rScales[b]!) / 127) * Math.sqrt(vi);
  }
  return { m, v };
}

/**
 * How far `b`'s update direction m / sqrt(v) is from `a`'s over all parameters, as a relative L2
 * distance (entries with v = 0 in `a` take no step and are left out): what a resume from `b`
 * instead of `a` changes in its first step, before the moments' decay washes the difference out.
 */
export function updateDirectionError(
  a: Map<string, { m: Float32Array; v: Float32Array }>,
  b: Map<string, { m: Float32Array; v: Float32Array }>,
): number {
  let diff = 0;
  let norm = 0;
  for (const [name, x] of a) {
    const y = b.get(name);
    if (!y || y.m.length !== x.m.length) throw new Error(`updateDirectionError: no matching moments for '${name}'`);
    for (let i = 0; i < x.m.length; i++) {
      if (!(x.v[i]! > 0)) continue;
      const u = x.m[i]! / Math.sqrt(x.v[i]!);
      const w = y.v[i]! > 0 ? y.m[i]! / Math.sqrt(y.v[i]!) : 0;
      diff += (u - w) ** 2;
      norm += u * u;
    }
  }
  return norm > 0 ? Math.sqrt(diff / norm) : 0;
}
