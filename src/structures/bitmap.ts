/**
 * Bitmap masks as flat row-major arrays: Uint8Array of 0/1 (any non-zero counts as foreground)
 * or Float32Array probabilities where a function says so. Pure functions, no tensors: these run
 * in post-processing and evaluation on single masks.
 */
import type { Box } from './boxes.js';

export type ResizeMode = 'nearest' | 'bilinear';

function checkSize(mask: ArrayLike<number>, h: number, w: number, what: string): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0)
    throw new Error(`${what}: size must be non-negative integers, got ${h}x${w}`);
  if (mask.length !== h * w) throw new Error(`${what}: mask has ${mask.length} values, ${h}x${w} needs ${h * w}`);
}

const fround = Math.fround;

/** Source index for each output index under PyTorch's 'nearest' (floor(dst * in/out) in float32). */
function nearestIndices(inSize: number, outSize: number): Int32Array {
  const out = new Int32Array(outSize);
  const scale = fround(inSize / outSize);
  for (let i = 0; i < outSize; i++) out[i] = Math.min(Math.floor(fround(i * scale)), inSize - 1);
  return out;
}

/** Bilinear taps (align_corners=False): lower index, upper index and the upper weight. */
function bilinearTaps(inSize: number, outSize: number): { lo: Int32Array; hi: Int32Array; frac: Float64Array } {
  const lo = new Int32Array(outSize);
  const hi = new Int32Array(outSize);
  const frac = new Float64Array(outSize);
  const scale = inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    const src = Math.max((i + 0.5) * scale - 0.5, 0);
    const l = Math.min(Math.floor(src), inSize - 1);
    lo[i] = l;
    hi[i] = l < inSize - 1 ? l + 1 : l;
    frac[i] = src - l;
  }
  return { lo, hi, frac };
}

/**
 * Resizes a mask like torch.nn.functional.interpolate: 'nearest' keeps the array type (labels
 * and binary masks stay exact); 'bilinear' (align_corners=False, no antialiasing) returns
 * Float32Array probabilities.
 */
export function resizeMask(
  mask: Uint8Array,
  h: number,
  w: number,
  newH: number,
  newW: number,
  mode: 'nearest',
): Uint8Array;
export function resizeMask(
  mask: Float32Array,
  h: number,
  w: number,
  newH: number,
  newW: number,
  mode: 'nearest',
): Float32Array;
export function resizeMask(
  mask: Uint8Array | Float32Array,
  h: number,
  w: number,
  newH: number,
  newW: number,
  mode: 'bilinear',
): Float32Array;
export function resizeMask(
  mask: Uint8Array | Float32Array,
  h: number,
  w: number,
  newH: number,
  newW: number,
  mode: ResizeMode,
): Uint8Array | Float32Array;
export function resizeMask(
  mask: Uint8Array | Float32Array,
  h: number,
  w: number,
  newH: number,
  newW: number,
  mode: ResizeMode,
): Uint8Array | Float32Array {
  checkSize(mask, h, w, 'resizeMask');
  if (!Number.isInteger(newH) || !Number.isInteger(newW) || newH <= 0 || newW <= 0) {
    throw new Error(`resizeMask: target size must be positive integers, got ${newH}x${newW}`);
  }
  if (h === 0 || w === 0) throw new Error(`resizeMask: cannot resize an empty ${h}x${w} mask`);
  if (mode === 'nearest') {
    const out = mask instanceof Float32Array ? new Float32Array(newH * newW) : new Uint8Array(newH * newW);
    const ys = nearestIndices(h, newH);
    const xs = nearestIndices(w, newW);
    for (let y = 0; y < newH; y++) {
      const row = ys[y]! * w;
      for (let x = 0; x < newW; x++) out[y * newW + x] = mask[row + xs[x]!]!;
    }
    return out;
  }
  if (mode !== 'bilinear') throw new Error(`resizeMask: unknown mode '${mode as string}'`);
  const out = new Float32Array(newH * newW);
  const ty = bilinearTaps(h, newH);
  const tx = bilinearTaps(w, newW);
  for (let y = 0; y < newH; y++) {
    const r0 = ty.lo[y]! * w;
    const r1 = ty.hi[y]! * w;
    const fy = ty.frac[y]!;
    for (let x = 0; x < newW; x++) {
      const c0 = tx.lo[x]!;
      const c1 = tx.hi[x]!;
      const fx = tx.frac[x]!;
      const top = mask[r0 + c0]! * (1 - fx) + mask[r0 + c1]! * fx;
      const bottom = mask[r1 + c0]! * (1 - fx) + mask[r1 + c1]! * fx;
      out[y * newW + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/**
 * Samples a box-local probability mask (maskH x maskW, covering `box`) onto the image grid:
 * detectron2's _do_paste_mask, i.e. grid_sample(bilinear, zeros padding, align_corners=False) at
 * each image pixel centre, over the box expanded by one pixel (pixels further out stay 0), in
 * float32 arithmetic. Degenerate boxes (zero width or height) paste nothing.
 */
export function pasteMaskSoft(
  boxMask: Float32Array | Uint8Array,
  maskH: number,
  maskW: number,
  box: readonly [number, number, number, number],
  imageH: number,
  imageW: number,
): Float32Array {
  checkSize(boxMask, maskH, maskW, 'pasteMask');
  const out = new Float32Array(imageH * imageW);
  const paste = pasteTaps(maskH, maskW, box, imageH, imageW);
  if (!paste) return out;
  const { xStart, cols } = paste;
  for (let y = paste.yStart; y < paste.yEnd; y++) {
    const row = paste.row(y);
    if (!row) continue;
    for (let c = 0; c < cols; c++) out[y * imageW + xStart + c] = pastedValue(boxMask, maskW, paste, row, c);
  }
  return out;
}

/**
 * pasteMaskSoft thresholded (value >= threshold, as detectron2's paste_masks_in_image), the
 * same bits made faster: along a row, the pixels between two mask columns read the same four
 * mask values; where those are all 0 the pixels are 0, and where all are 1 (with threshold
 * <= 0.5) they pass, since the bilinear weights then sum to 1 within float32 rounding (at least
 * 1 - 1e-6). Only pixels between differing mask values are computed.
 */
export function pasteMask(
  boxMask: Float32Array | Uint8Array,
  maskH: number,
  maskW: number,
  box: readonly [number, number, number, number],
  imageH: number,
  imageW: number,
  threshold = 0.5,
): Uint8Array {
  checkSize(boxMask, maskH, maskW, 'pasteMask');
  const out = new Uint8Array(imageH * imageW);
  // Pixels whose value is 0 (everything the paste does not reach among them) pass a threshold <= 0.
  const zero = 0 >= threshold ? 1 : 0;
  if (zero) out.fill(1);
  const paste = pasteTaps(maskH, maskW, box, imageH, imageW);
  if (!paste) return out;
  const { xStart, cols, west, wWest, wEast } = paste;
  const onesPass = threshold <= 0.5;
  // Pixel columns in spans with the same west mask column: [spanStart[s], spanStart[s + 1]).
  const spanStart: number[] = [];
  for (let c = 0; c < cols; c++) if (c === 0 || west[c] !== west[c - 1]) spanStart.push(c);
  spanStart.push(cols);
  const maskAt = (r: number, c: number) => (r >= 0 && r < maskH && c >= 0 && c < maskW ? boxMask[r * maskW + c]! : 0);
  for (let y = paste.yStart; y < paste.yEnd; y++) {
    const row = paste.row(y);
    if (!row) continue;
    const base = y * imageW + xStart;
    for (let s = 0; s + 1 < spanStart.length; s++) {
      const c0 = spanStart[s]!;
      const c1 = spanStart[s + 1]!;
      const xW = west[c0]!;
      const nw = maskAt(row.yN, xW);
      const ne = maskAt(row.yN, xW + 1);
      const sw = maskAt(row.yN + 1, xW);
      const se = maskAt(row.yN + 1, xW + 1);
      // All four 0: the value is 0, which `out` already holds.
      if (nw === 0 && ne === 0 && sw === 0 && se === 0) continue;
      if (onesPass && nw === 1 && ne === 1 && sw === 1 && se === 1) out.fill(1, base + c0, base + c1);
      else if (Number.isFinite(nw + ne + sw + se)) {
        // pastedValue with the span's four values: a tap it reads as 0 (zero weight) has a
        // finite value times a zero weight here, also 0 (or -0, which thresholds alike).
        const { ty, wNorth } = row;
        for (let c = c0; c < c1; c++) {
          const ww = wWest[c]!;
          const we = wEast[c]!;
          const vNW = fround(nw * fround(ww * wNorth));
          const vNE = fround(ne * fround(we * wNorth));
          const vSW = fround(sw * fround(ww * ty));
          const vSE = fround(se * fround(we * ty));
          out[base + c] = fround(fround(fround(vNW + vNE) + vSW) + vSE) >= threshold ? 1 : 0;
        }
      } else
        for (let c = c0; c < c1; c++) out[base + c] = pastedValue(boxMask, maskW, paste, row, c) >= threshold ? 1 : 0;
    }
  }
  return out;
}

/** Where a paste reaches and its column taps (the same on every row), or null when it reaches nothing. */
interface PasteTaps {
  xStart: number;
  cols: number;
  yStart: number;
  yEnd: number;
  /** Per pixel column: the west mask column, its weight (1 - tx) and the east weight tx, 0 where a tap falls outside the mask. */
  west: Int32Array;
  wWest: Float32Array;
  wEast: Float32Array;
  /** Row y's taps: north mask row, weights, and which of the two rows lie in the mask; null when neither does. */
  row(y: number): RowTaps | null;
}

interface RowTaps {
  yN: number;
  ty: number;
  wNorth: number;
  northIn: boolean;
  southIn: boolean;
}

function pasteTaps(
  maskH: number,
  maskW: number,
  box: readonly [number, number, number, number],
  imageH: number,
  imageW: number,
): PasteTaps | null {
  const [x0, y0, x1, y1] = [fround(box[0]), fround(box[1]), fround(box[2]), fround(box[3])];
  if (!(x1 > x0 && y1 > y0) || maskH === 0 || maskW === 0) return null;
  const xStart = Math.max(Math.floor(x0) - 1, 0);
  const yStart = Math.max(Math.floor(y0) - 1, 0);
  const xEnd = Math.min(Math.ceil(x1) + 1, imageW);
  const yEnd = Math.min(Math.ceil(y1) + 1, imageH);
  if (xStart >= xEnd || yStart >= yEnd) return null;
  const bw = fround(x1 - x0);
  const bh = fround(y1 - y0);
  const halfW = fround(maskW / 2);
  const halfH = fround(maskH / 2);
  // Source coordinate of an image pixel centre: normalise to [-1, 1] over the box (as
  // detectron2 builds the grid), then grid_sample's unnormalisation.
  const sourceCoord = (pixel: number, start: number, extent: number, half: number) => {
    const g = fround(fround(fround(fround(pixel + 0.5) - start) / extent) * 2) - 1;
    return fround(fround(fround(g) + 1) * half) - 0.5;
  };
  // Weights of taps that fall outside the mask are zeroed (grid_sample's zero padding).
  const cols = xEnd - xStart;
  const west = new Int32Array(cols);
  const wWest = new Float32Array(cols);
  const wEast = new Float32Array(cols);
  for (let x = xStart; x < xEnd; x++) {
    const ix = fround(sourceCoord(x, x0, bw, halfW));
    const xW = Math.floor(ix);
    const tx = fround(ix - xW);
    west[x - xStart] = xW;
    wWest[x - xStart] = xW >= 0 && xW < maskW ? fround(1 - tx) : 0;
    wEast[x - xStart] = xW + 1 >= 0 && xW + 1 < maskW ? tx : 0;
  }
  const row = (y: number): RowTaps | null => {
    const iy = fround(sourceCoord(y, y0, bh, halfH));
    const yN = Math.floor(iy);
    const ty = fround(iy - yN);
    const northIn = yN >= 0 && yN < maskH;
    const southIn = yN + 1 >= 0 && yN + 1 < maskH;
    return northIn || southIn ? { yN, ty, wNorth: fround(1 - ty), northIn, southIn } : null;
  };
  return { xStart, cols, yStart, yEnd, west, wWest, wEast, row };
}

/** The pasted value of pixel column c on a row, in float32. */
function pastedValue(
  boxMask: Float32Array | Uint8Array,
  maskW: number,
  { west, wWest, wEast }: PasteTaps,
  { yN, ty, wNorth, northIn, southIn }: RowTaps,
  c: number,
): number {
  const xW = west[c]!;
  const ww = wWest[c]!;
  const we = wEast[c]!;
  const rowN = yN * maskW;
  const rowS = rowN + maskW;
  const nw = northIn && ww !== 0 ? boxMask[rowN + xW]! : 0;
  const ne = northIn && we !== 0 ? boxMask[rowN + xW + 1]! : 0;
  const sw = southIn && ww !== 0 ? boxMask[rowS + xW]! : 0;
  const se = southIn && we !== 0 ? boxMask[rowS + xW + 1]! : 0;
  // Same products and left-to-right sum as PyTorch's CPU grid sampler, in float32.
  const vNW = fround(nw * fround(ww * wNorth));
  const vNE = fround(ne * fround(we * wNorth));
  const vSW = fround(sw * fround(ww * ty));
  const vSE = fround(se * fround(we * ty));
  return fround(fround(fround(vNW + vNE) + vSW) + vSE);
}

/** Binary mask from probabilities or logits: value > threshold. */
export function thresholdMask(values: ArrayLike<number>, threshold = 0.5): Uint8Array {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i]! > threshold ? 1 : 0;
  return out;
}

export function maskArea(mask: ArrayLike<number>): number {
  let area = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) area++;
  return area;
}

/**
 * Tight xyxy box around the foreground with exclusive right/bottom edges, as detectron2's
 * BitMasks.get_bounding_boxes (a one-pixel mask at (3, 4) gives [3, 4, 4, 5]); an empty mask
 * gives [0, 0, 0, 0].
 */
export function maskToBox(mask: ArrayLike<number>, h: number, w: number): Box {
  checkSize(mask, h, w, 'maskToBox');
  let x1 = w;
  let y1 = h;
  let x2 = -1;
  let y2 = -1;
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      if (!mask[row + x]) continue;
      if (x < x1) x1 = x;
      if (x > x2) x2 = x;
      if (y < y1) y1 = y;
      y2 = y;
    }
  }
  return x2 < 0 ? [0, 0, 0, 0] : [x1, y1, x2 + 1, y2 + 1];
}

/** Pixel counts of the intersection and union of two same-size binary masks. */
export function maskIntersectionUnion(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
): { intersection: number; union: number } {
  if (a.length !== b.length) throw new Error(`maskIntersectionUnion: masks have ${a.length} and ${b.length} pixels`);
  let intersection = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    const p = a[i] !== 0;
    const q = b[i] !== 0;
    if (p && q) intersection++;
    if (p || q) union++;
  }
  return { intersection, union };
}

/** Intersection over union; 0 when both masks are empty (as pycocotools). */
export function maskIou(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const { intersection, union } = maskIntersectionUnion(a, b);
  return union === 0 ? 0 : intersection / union;
}
