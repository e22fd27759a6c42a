import type { RgbImage } from '../io/image-types.js';
import { blendPixel } from './image.js';
import type { Rgb } from './palette.js';

/** Fills the axis-aligned rectangle [x, x+w) x [y, y+h) (rounded to pixels, clipped). */
export function fillRect(image: RgbImage, x: number, y: number, w: number, h: number, color: Rgb, alpha = 1): void {
  const x0 = Math.max(0, Math.round(x));
  const y0 = Math.max(0, Math.round(y));
  const x1 = Math.min(image.width, Math.round(x + w));
  const y1 = Math.min(image.height, Math.round(y + h));
  for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) blendPixel(image, xx, yy, color, alpha);
}

/**
 * Outlines the box [x, x+w) x [y, y+h) with lines `thickness` pixels wide drawn inside it,
 * so that a box around a mask's extent covers exactly the mask's outermost pixels.
 */
export function strokeRect(
  image: RgbImage,
  x: number,
  y: number,
  w: number,
  h: number,
  color: Rgb,
  thickness = 1,
  alpha = 1,
): void {
  const x0 = Math.round(x);
  const y0 = Math.round(y);
  const x1 = Math.round(x + w);
  const y1 = Math.round(y + h);
  const t = Math.max(1, Math.min(thickness, Math.ceil((x1 - x0) / 2), Math.ceil((y1 - y0) / 2)));
  if (x1 <= x0 || y1 <= y0) return;
  fillRect(image, x0, y0, x1 - x0, t, color, alpha);
  fillRect(image, x0, y1 - t, x1 - x0, t, color, alpha);
  fillRect(image, x0, y0 + t, t, y1 - y0 - 2 * t, color, alpha);
  fillRect(image, x1 - t, y0 + t, t, y1 - y0 - 2 * t, color, alpha);
}
