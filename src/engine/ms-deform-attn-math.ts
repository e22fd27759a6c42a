/**
 * Multi-scale deformable attention on flat Float32Arrays: the arithmetic behind the
 * ApeMsDeformAttn kernels of both backends. Semantics of APE's
 * `multi_scale_deformable_attn_pytorch`: per level, bilinear `grid_sample` with zero padding and
 * align_corners=False (pixel x = loc_x * W - 0.5), weighted by the attention weights and summed
 * over levels and points, per head.
 *
 * Layouts (row-major): value [bs, S, heads, dHead] with S = sum H_l * W_l (levels stacked in
 * order); loc [bs, Lq, heads, levels, points, 2] as (x, y) in [0, 1]; weights
 * [bs, Lq, heads, levels, points]; out [bs, Lq, heads, dHead].
 */

export interface MsdaDims {
  batch: number;
  /** Number of value rows per image: sum of H_l * W_l. */
  numValue: number;
  heads: number;
  dHead: number;
  numQuery: number;
  levels: number;
  points: number;
  /** [H_0, W_0, H_1, W_1, ...]. */
  shapes: readonly number[];
}

/** The four bilinear taps of one sample: value offsets (clamped in range) and weights (0 outside). */
interface Taps {
  o00: number;
  o01: number;
  o10: number;
  o11: number;
  w00: number;
  w01: number;
  w10: number;
  w11: number;
  fx: number;
  fy: number;
  m00: number;
  m01: number;
  m10: number;
  m11: number;
}

function levelStarts(d: MsdaDims): number[] {
  const starts: number[] = [];
  let s = 0;
  for (let l = 0; l < d.levels; l++) {
    starts.push(s);
    s += d.shapes[2 * l]! * d.shapes[2 * l + 1]!;
  }
  if (s !== d.numValue) throw new Error(`msDeformAttn: spatial shapes cover ${s} value rows, value has ${d.numValue}`);
  return starts;
}

/**
 * Fills `t` for a sample at normalised (lx, ly) on an h x w map whose first value row (for this
 * image and head) is at float offset `base`; rows are `rowStride` floats apart. Returns false when
 * no tap lands on the map.
 */
function taps(t: Taps, lx: number, ly: number, h: number, w: number, base: number, rowStride: number): boolean {
  const x = lx * w - 0.5;
  const y = ly * h - 0.5;
  // NaN or far outside: nothing to sample (also keeps floor() finite).
  if (!(x >= -1 && y >= -1 && x < w && y < h)) return false;
  const x0 = Math.floor(x);
  const y0 = Math.floor(y);
  const fx = x - x0;
  const fy = y - y0;
  const inX0 = x0 >= 0 ? 1 : 0;
  const inX1 = x0 + 1 < w ? 1 : 0;
  const inY0 = y0 >= 0 ? 1 : 0;
  const inY1 = y0 + 1 < h ? 1 : 0;
  // Taps off the map keep a valid address (clamped) and a zero mask.
  const cx0 = inX0 ? x0 : 0;
  const cx1 = inX1 ? x0 + 1 : w - 1;
  const cy0 = inY0 ? y0 : 0;
  const cy1 = inY1 ? y0 + 1 : h - 1;
  t.m00 = inY0 & inX0;
  t.m01 = inY0 & inX1;
  t.m10 = inY1 & inX0;
  t.m11 = inY1 & inX1;
  t.w00 = (1 - fx) * (1 - fy) * t.m00;
  t.w01 = fx * (1 - fy) * t.m01;
  t.w10 = (1 - fx) * fy * t.m10;
  t.w11 = fx * fy * t.m11;
  t.o00 = base + (cy0 * w + cx0) * rowStride;
  t.o01 = base + (cy0 * w + cx1) * rowStride;
  t.o10 = base + (cy1 * w + cx0) * rowStride;
  t.o11 = base + (cy1 * w + cx1) * rowStride;
  t.fx = fx;
  t.fy = fy;
  return true;
}

function newTaps(): Taps {
  return {
    o00: 0,
    o01: 0,
    o10: 0,
    o11: 0,
    w00: 0,
    w01: 0,
    w10: 0,
    w11: 0,
    fx: 0,
    fy: 0,
    m00: 0,
    m01: 0,
    m10: 0,
    m11: 0,
  };
}

export function msdaForward(
  d: MsdaDims,
  value: Float32Array,
  loc: Float32Array,
  weights: Float32Array,
  out: Float32Array,
): void {
  const { batch, numValue, heads, dHead: c, numQuery, levels, points, shapes } = d;
  const starts = levelStarts(d);
  const rowStride = heads * c;
  const t = newTaps();
  out.fill(0);
  let s = 0; // sample index into weights (and 2*s into loc)
  for (let b = 0; b < batch; b++) {
    for (let q = 0; q < numQuery; q++) {
      for (let h = 0; h < heads; h++) {
        const o = ((b * numQuery + q) * heads + h) * c;
        for (let l = 0; l < levels; l++) {
          const hl = shapes[2 * l]!;
          const wl = shapes[2 * l + 1]!;
          const base = ((b * numValue + starts[l]!) * heads + h) * c;
          for (let p = 0; p < points; p++, s++) {
            const a = weights[s]!;
            if (!taps(t, loc[2 * s]!, loc[2 * s + 1]!, hl, wl, base, rowStride)) continue;
            const w00 = a * t.w00,
              w01 = a * t.w01,
              w10 = a * t.w10,
              w11 = a * t.w11;
            const o00 = t.o00,
              o01 = t.o01,
              o10 = t.o10,
              o11 = t.o11;
            for (let k = 0; k < c; k++) {
              out[o + k]! +=
                w00 * value[o00 + k]! + w01 * value[o01 + k]! + w10 * value[o10 + k]! + w11 * value[o11 + k]!;
            }
          }
        }
      }
    }
  }
}

/**
 * Gradients of sum(out * dOut) with respect to value, loc and weights. dValue is accumulated
 * into (zeroed here); dLoc and dWeights are written.
 */
export function msdaBackward(
  d: MsdaDims,
  value: Float32Array,
  loc: Float32Array,
  weights: Float32Array,
  dOut: Float32Array,
  dValue: Float32Array,
  dLoc: Float32Array,
  dWeights: Float32Array,
): void {
  const { batch, numValue, heads, dHead: c, numQuery, levels, points, shapes } = d;
  const starts = levelStarts(d);
  const rowStride = heads * c;
  const t = newTaps();
  dValue.fill(0);
  let s = 0;
  for (let b = 0; b < batch; b++) {
    for (let q = 0; q < numQuery; q++) {
      for (let h = 0; h < heads; h++) {
        const o = ((b * numQuery + q) * heads + h) * c;
        for (let l = 0; l < levels; l++) {
          const hl = shapes[2 * l]!;
          const wl = shapes[2 * l + 1]!;
          const base = ((b * numValue + starts[l]!) * heads + h) * c;
          for (let p = 0; p < points; p++, s++) {
            if (!taps(t, loc[2 * s]!, loc[2 * s + 1]!, hl, wl, base, rowStride)) {
              dLoc[2 * s] = 0;
              dLoc[2 * s + 1] = 0;
              dWeights[s] = 0;
              continue;
            }
            const a = weights[s]!;
            const o00 = t.o00,
              o01 = t.o01,
              o10 = t.o10,
              o11 = t.o11;
            const g00 = a * t.w00,
              g01 = a * t.w01,
              g10 = a * t.w10,
              g11 = a * t.w11;
            // s_ij = <dOut, v_ij> per tap; dValue gets the weighted dOut.
            let s00 = 0,
              s01 = 0,
              s10 = 0,
              s11 = 0;
            for (let k = 0; k < c; k++) {
              const g = dOut[o + k]!;
              s00 += g * value[o00 + k]!;
              s01 += g * value[o01 + k]!;
              s10 += g * value[o10 + k]!;
              s11 += g * value[o11 + k]!;
              dValue[o00 + k]! += g00 * g;
              dValue[o01 + k]! += g01 * g;
              dValue[o10 + k]! += g10 * g;
              dValue[o11 + k]! += g11 * g;
            }
            s00 *= t.m00;
            s01 *= t.m01;
            s10 *= t.m10;
            s11 *= t.m11;
            const fx = t.fx,
              fy = t.fy;
            dWeights[s] = t.w00 * s00 + t.w01 * s01 + t.w10 * s10 + t.w11 * s11;
            dLoc[2 * s] = a * wl * ((1 - fy) * (s01 - s00) + fy * (s11 - s10));
            dLoc[2 * s + 1] = a * hl * ((1 - fx) * (s10 - s00) + fx * (s11 - s01));
          }
        }
      }
    }
  }
}
