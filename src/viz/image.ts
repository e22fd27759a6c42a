import type { RgbImage } from '../io/image-types.js';
import type { Rgb } from './palette.js';

/** A new width x height RGB image filled with one colour (black by default). */
export function createRgbImage(width: number, height: number, fill: Rgb = [0, 0, 0]): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new Error(`createRgbImage: size must be positive integers, got ${width}x${height}`);
  }
  const data = new Uint8Array(width * height * 3);
  if (fill[0] !== 0 || fill[1] !== 0 || fill[2] !== 0) {
    for (let i = 0; i < data.length; i += 3) {
      data[i] = fill[0];
      data[i + 1] = fill[1];
      data[i + 2] = fill[2];
    }
  }
  return { width, height, data };
}

export function cloneRgbImage(image: RgbImage): RgbImage {
  return { width: image.width, height: image.height, data: new Uint8Array(image.data) };
}

/** Copies `src` into `dst` with its top-left corner at (x, y), clipped to `dst`. */
export function blit(dst: RgbImage, src: RgbImage, x: number, y: number): void {
  const x0 = Math.max(0, x);
  const y0 = Math.max(0, y);
  const x1 = Math.min(dst.width, x + src.width);
  const y1 = Math.min(dst.height, y + src.height);
  if (x1 <= x0) return;
  for (let yy = y0; yy < y1; yy++) {
    const srcStart = ((yy - y) * src.width + (x0 - x)) * 3;
    dst.data.set(src.data.subarray(srcStart, srcStart + (x1 - x0) * 3), (yy * dst.width + x0) * 3);
  }
}

/** Nearest-neighbour resize; pixel (x, y) of the result samples the source pixel its centre falls in. */
export function resizeNearest(image: RgbImage, width: number, height: number): RgbImage {
  const out = createRgbImage(width, height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(image.height - 1, Math.floor(((y + 0.5) * image.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(image.width - 1, Math.floor(((x + 0.5) * image.width) / width));
      const s = (sy * image.width + sx) * 3;
      const d = (y * width + x) * 3;
      out.data[d] = image.data[s]!;
      out.data[d + 1] = image.data[s + 1]!;
      out.data[d + 2] = image.data[s + 2]!;
    }
  }
  return out;
}

/** Replicates a single-channel image into RGB. */
export function grayToRgb(gray: { width: number; height: number; data: Uint8Array }): RgbImage {
  const out = createRgbImage(gray.width, gray.height);
  for (let i = 0; i < gray.width * gray.height; i++) {
    const v = gray.data[i]!;
    out.data[3 * i] = v;
    out.data[3 * i + 1] = v;
    out.data[3 * i + 2] = v;
  }
  return out;
}

/**
 * Writes `color` at (x, y) mixed with what is there: alpha 1 replaces, 0 keeps.
 * Out-of-bounds coordinates are ignored so callers can draw shapes that leave the image.
 */
export function blendPixel(image: RgbImage, x: number, y: number, color: Rgb, alpha = 1): void {
  if (x < 0 || y < 0 || x >= image.width || y >= image.height) return;
  const i = (y * image.width + x) * 3;
  const d = image.data;
  if (alpha >= 1) {
    d[i] = color[0];
    d[i + 1] = color[1];
    d[i + 2] = color[2];
    return;
  }
  d[i] = Math.round(d[i]! + (color[0] - d[i]!) * alpha);
  d[i + 1] = Math.round(d[i + 1]! + (color[1] - d[i + 1]!) * alpha);
  d[i + 2] = Math.round(d[i + 2]! + (color[2] - d[i + 2]!) * alpha);
}
