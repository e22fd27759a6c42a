import type { RgbImage } from '../io/image-types.js';
import { blendPixel } from './image.js';
import type { Rgb } from './palette.js';

/**
 * A straight line between pixel centres (Bresenham); `thickness` > 1 stamps a square brush
 * of that width at every step, centred on the line pixel (for even widths, one more pixel
 * right and down).
 */
export function drawLine(
  image: RgbImage,
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  color: Rgb,
  thickness = 1,
): void {
  let x = Math.round(x0);
  let y = Math.round(y0);
  const xe = Math.round(x1);
  const ye = Math.round(y1);
  const dx = Math.abs(xe - x);
  const dy = -Math.abs(ye - y);
  const sx = x < xe ? 1 : -1;
  const sy = y < ye ? 1 : -1;
  const lo = -Math.floor((thickness - 1) / 2);
  const hi = lo + Math.max(1, thickness) - 1;
  let err = dx + dy;
  for (;;) {
    for (let by = lo; by <= hi; by++) for (let bx = lo; bx <= hi; bx++) blendPixel(image, x + bx, y + by, color);
    if (x === xe && y === ye) break;
    const e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y += sy;
    }
  }
}

/** The closed outline through `points` ([x0, y0, x1, y1, ...]). */
export function drawPolyline(
  image: RgbImage,
  points: readonly number[],
  color: Rgb,
  thickness = 1,
  closed = true,
): void {
  const n = Math.floor(points.length / 2);
  for (let i = 0; i + 1 < n + (closed ? 1 : 0); i++) {
    const j = (i + 1) % n;
    drawLine(image, points[2 * i]!, points[2 * i + 1]!, points[2 * j]!, points[2 * j + 1]!, color, thickness);
  }
}
