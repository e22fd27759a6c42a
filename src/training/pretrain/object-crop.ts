import type { BoxXYXY } from '../../data/types.js';
import type { RgbImage } from '../../io/image-types.js';

/**
 * Where a crop lies: a `size` x `size` window of the image scaled by `scale`, whose top-left
 * corner is at (`left`, `top`) of the scaled image, mirrored left-right when `flip`.
 */
export interface CropPlacement {
  left: number;
  top: number;
  size: number;
  scale: number;
  flip: boolean;
}

/**
 * The crop centred on a box (source pixels) of the image scaled by `scale`, moved by `shift`
 * (scaled pixels): at scale 1 the crop is a window of the image itself, so an object keeps the
 * size the full-image steps show it at.
 */
export function placeCrop(
  box: BoxXYXY,
  size: number,
  scale: number,
  flip: boolean,
  shift: readonly [number, number] = [0, 0],
): CropPlacement {
  const cx = ((box[0] + box[2]) / 2) * scale + shift[0];
  const cy = ((box[1] + box[3]) / 2) * scale + shift[1];
  return { left: Math.round(cx - size / 2), top: Math.round(cy - size / 2), size, scale, flip };
}

/**
 * Source coordinate (continuous, pixel edges at integers) of crop column or row `u`: the centre of
 * scaled pixel `start + u` mapped back through the scale.
 */
function sourceAt(start: number, u: number, scale: number): number {
  return (start + u + 0.5) / scale;
}

/**
 * A crop's pixels, normalised per channel ((v - mean) / std) as the network normalises images,
 * [size, size, 3] row-major; bilinear between source pixel centres (exact copies at scale 1).
 * Where the crop leaves the image the value is 0, which is what the network sees beyond an image
 * edge (its padding is zeroed after normalisation, and convolutions pad with zeros).
 */
export function cropPixels(
  image: RgbImage,
  at: CropPlacement,
  mean: readonly [number, number, number],
  std: readonly [number, number, number],
): Float32Array {
  const { width: W, height: H, data } = image;
  const n = at.size;
  const out = new Float32Array(n * n * 3);
  for (let r = 0; r < n; r++) {
    const y = sourceAt(at.top, r, at.scale);
    if (y < 0 || y >= H) continue;
    const fy = Math.min(Math.max(y - 0.5, 0), H - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, H - 1);
    const ay = fy - y0;
    for (let u = 0; u < n; u++) {
      const x = sourceAt(at.left, at.flip ? n - 1 - u : u, at.scale);
      if (x < 0 || x >= W) continue;
      const fx = Math.min(Math.max(x - 0.5, 0), W - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, W - 1);
      const ax = fx - x0;
      for (let c = 0; c < 3; c++) {
        const top = data[(y0 * W + x0) * 3 + c]! * (1 - ax) + data[(y0 * W + x1) * 3 + c]! * ax;
        const bottom = data[(y1 * W + x0) * 3 + c]! * (1 - ax) + data[(y1 * W + x1) * 3 + c]! * ax;
        out[(r * n + u) * 3 + c] = (top * (1 - ay) + bottom * ay - mean[c]!) / std[c]!;
      }
    }
  }
  return out;
}

/**
 * The object's region in the crop, [size, size] of 0/1: its mask (W x H, source pixels) sampled
 * at the nearest source pixel, or its box where it has no mask or its mask misses the crop.
 */
export function cropRegion(
  mask: Uint8Array | undefined,
  box: BoxXYXY,
  width: number,
  height: number,
  at: CropPlacement,
): Uint8Array {
  const n = at.size;
  const fromMask = new Uint8Array(n * n);
  const fromBox = new Uint8Array(n * n);
  let any = false;
  for (let r = 0; r < n; r++) {
    const y = sourceAt(at.top, r, at.scale);
    for (let u = 0; u < n; u++) {
      const x = sourceAt(at.left, at.flip ? n - 1 - u : u, at.scale);
      if (x >= box[0] && x < box[2] && y >= box[1] && y < box[3]) fromBox[r * n + u] = 1;
      if (!mask || x < 0 || x >= width || y < 0 || y >= height) continue;
      if (mask[Math.floor(y) * width + Math.floor(x)]) {
        fromMask[r * n + u] = 1;
        any = true;
      }
    }
  }
  return any ? fromMask : fromBox;
}
