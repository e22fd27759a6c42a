import type { RgbImage } from '../io/image-types.js';
import type { Rgb } from './palette.js';

function checkMaskSize(image: RgbImage, mask: ArrayLike<number>, who: string): void {
  if (mask.length !== image.width * image.height) {
    throw new Error(`${who}: mask has ${mask.length} pixels, image is ${image.width}x${image.height}`);
  }
}

/** Tints every pixel where mask != 0 towards `color` (alpha 1 paints it solid). */
export function blendMask(image: RgbImage, mask: ArrayLike<number>, color: Rgb, alpha = 0.5): void {
  checkMaskSize(image, mask, 'blendMask');
  const d = image.data;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const p = 3 * i;
    d[p] = Math.round(d[p]! + (color[0] - d[p]!) * alpha);
    d[p + 1] = Math.round(d[p + 1]! + (color[1] - d[p + 1]!) * alpha);
    d[p + 2] = Math.round(d[p + 2]! + (color[2] - d[p + 2]!) * alpha);
  }
}

/**
 * Paints the mask's boundary: mask pixels with a 4-neighbour outside the mask (or at the
 * image edge when `edgeIsBoundary`).
 */
export function drawMaskContour(image: RgbImage, mask: ArrayLike<number>, color: Rgb, edgeIsBoundary = false): void {
  checkMaskSize(image, mask, 'drawMaskContour');
  const { width: w, height: h, data: d } = image;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!mask[i]) continue;
      const boundary =
        (x === 0 ? edgeIsBoundary : !mask[i - 1]) ||
        (x === w - 1 ? edgeIsBoundary : !mask[i + 1]) ||
        (y === 0 ? edgeIsBoundary : !mask[i - w]) ||
        (y === h - 1 ? edgeIsBoundary : !mask[i + w]);
      if (!boundary) continue;
      d[3 * i] = color[0];
      d[3 * i + 1] = color[1];
      d[3 * i + 2] = color[2];
    }
  }
}

/** An RGB picture of a label map (e.g. a semantic segmentation): label v gets palette[v]; `ignore` is drawn black. */
export function colorizeLabels(
  labels: { width: number; height: number; data: ArrayLike<number> },
  colorOf: (label: number) => Rgb,
  ignore = 255,
): RgbImage {
  const { width, height } = labels;
  const data = new Uint8Array(width * height * 3);
  const cache = new Map<number, Rgb>();
  for (let i = 0; i < width * height; i++) {
    const v = labels.data[i]!;
    if (v === ignore) continue;
    let c = cache.get(v);
    if (c === undefined) {
      c = colorOf(v);
      cache.set(v, c);
    }
    data[3 * i] = c[0];
    data[3 * i + 1] = c[1];
    data[3 * i + 2] = c[2];
  }
  return { width, height, data };
}
