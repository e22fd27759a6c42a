/**
 * Run-length encoded binary masks exactly as pycocotools (maskApi.c) keeps them: runs over the
 * mask in column-major order (down each column, then the next column), alternating 0 and 1 and
 * always starting with a (possibly empty) run of zeros.
 */
export interface Rle {
  /** [height, width] */
  size: [number, number];
  /** Uncompressed run lengths. */
  counts: number[];
}

/** The compressed string form used in COCO files (see rle-string.ts). */
export interface CompressedRle {
  size: [number, number];
  counts: string;
}

/** Largest mask decodeRle will materialise (256 Mi pixels = 256 MiB). */
export const MAX_DECODED_PIXELS = 2 ** 28;
/** Largest image side accepted for masks. */
export const MAX_MASK_SIDE = 100_000;

/** Throws unless h and w are usable mask dimensions. */
export function assertMaskSize(h: number, w: number, what = 'mask'): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0 || h > MAX_MASK_SIDE || w > MAX_MASK_SIDE) {
    throw new Error(`${what}: size [${h}, ${w}] is not a pair of integers in [0, ${MAX_MASK_SIDE}]`);
  }
}

/** Encodes a row-major h*w mask (nonzero = 1). */
export function encodeRle(mask: ArrayLike<number>, h: number, w: number): Rle {
  assertMaskSize(h, w, 'encodeRle');
  if (mask.length !== h * w) throw new Error(`encodeRle: mask has ${mask.length} values, expected ${h}*${w}=${h * w}`);
  const counts: number[] = [];
  let previous = 0;
  let run = 0;
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      const v = mask[y * w + x] !== 0 ? 1 : 0;
      if (v !== previous) {
        counts.push(run);
        run = 0;
        previous = v;
      }
      run++;
    }
  }
  counts.push(run);
  return { size: [h, w], counts };
}

/** Throws unless the runs are non-negative integers covering exactly h*w pixels. */
export function assertRleValid(rle: Rle, what = 'RLE'): void {
  const [h, w] = rle.size;
  assertMaskSize(h, w, what);
  let total = 0;
  for (const c of rle.counts) {
    if (!Number.isInteger(c) || c < 0) throw new Error(`${what}: run length ${c} is not a non-negative integer`);
    total += c;
  }
  if (total !== h * w) throw new Error(`${what}: runs cover ${total} pixels but size [${h}, ${w}] has ${h * w}`);
}

/** Decodes to a row-major h*w mask of 0/1. */
export function decodeRle(rle: Rle): Uint8Array {
  const [h, w] = rle.size;
  assertRleValid(rle, 'decodeRle');
  if (h * w > MAX_DECODED_PIXELS) throw new Error(`decodeRle: ${h}x${w} exceeds ${MAX_DECODED_PIXELS} pixels`);
  const mask = new Uint8Array(h * w);
  let p = 0;
  for (let j = 0; j < rle.counts.length; j++) {
    const end = p + rle.counts[j]!;
    if (j % 2 === 1) {
      for (let q = p; q < end; q++) {
        const x = Math.floor(q / h);
        mask[(q - x * h) * w + x] = 1;
      }
    }
    p = end;
  }
  return mask;
}

/** Number of foreground pixels. */
export function rleArea(rle: Rle): number {
  let a = 0;
  for (let j = 1; j < rle.counts.length; j += 2) a += rle.counts[j]!;
  return a;
}

/**
 * Tight xywh box of the foreground in whole pixels, computed from the run ends alone as
 * maskApi.c's rleToBbox does (a run that wraps into the next column covers its full height).
 */
export function rleToBbox(rle: Rle): [number, number, number, number] {
  const [h, w] = rle.size;
  const m = rle.counts.length - (rle.counts.length % 2);
  if (m === 0 || h === 0) return [0, 0, 0, 0];
  let xs = w;
  let ys = h;
  let xe = 0;
  let ye = 0;
  let cc = 0;
  let xp = 0;
  for (let j = 0; j < m; j++) {
    cc = (cc + rle.counts[j]!) >>> 0;
    // uint arithmetic as in C: the end of a run is the pixel before the running total.
    const t = (cc - (j % 2)) >>> 0;
    const y = t % h;
    const x = (t - y) / h;
    if (j % 2 === 0) xp = x;
    else if (xp < x) {
      ys = 0;
      ye = h - 1;
    }
    xs = Math.min(xs, x);
    xe = Math.max(xe, x);
    ys = Math.min(ys, y);
    ye = Math.max(ye, y);
  }
  return [xs, ys, xe - xs + 1, ye - ys + 1];
}
