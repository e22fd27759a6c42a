import type { RgbImage } from '../io/image-types.js';
import { blendPixel } from './image.js';
import type { Rgb } from './palette.js';

/**
 * Pixel mask (row-major h*w, 1 inside) of the union of polygons, each [x0, y0, x1, y1, ...]
 * in pixel coordinates where pixel (i, j) spans [i, i+1) x [j, j+1). A pixel is inside when its
 * centre is inside the polygon by the even-odd rule; an edge crossing exactly at a centre counts
 * for the pixel on its right, so two polygons sharing an edge never both claim a pixel.
 */
export function rasterizePolygons(polygons: readonly (readonly number[])[], height: number, width: number): Uint8Array {
  const mask = new Uint8Array(height * width);
  const xs: number[] = [];
  for (const poly of polygons) {
    const n = Math.floor(poly.length / 2);
    if (n < 3) continue;
    let minY = Infinity;
    let maxY = -Infinity;
    for (let i = 0; i < n; i++) {
      minY = Math.min(minY, poly[2 * i + 1]!);
      maxY = Math.max(maxY, poly[2 * i + 1]!);
    }
    const yStart = Math.max(0, Math.ceil(minY - 0.5));
    const yEnd = Math.min(height - 1, Math.floor(maxY - 0.5));
    for (let y = yStart; y <= yEnd; y++) {
      const yc = y + 0.5;
      xs.length = 0;
      for (let i = 0; i < n; i++) {
        const j = (i + 1) % n;
        const ax = poly[2 * i]!;
        const ay = poly[2 * i + 1]!;
        const bx = poly[2 * j]!;
        const by = poly[2 * j + 1]!;
        if ((ay <= yc && yc < by) || (by <= yc && yc < ay)) xs.push(ax + ((yc - ay) * (bx - ax)) / (by - ay));
      }
      xs.sort((a, b) => a - b);
      for (let k = 0; k + 1 < xs.length; k += 2) {
        const x0 = Math.max(0, Math.ceil(xs[k]! - 0.5));
        const x1 = Math.min(width, Math.ceil(xs[k + 1]! - 0.5));
        for (let x = x0; x < x1; x++) mask[y * width + x] = 1;
      }
    }
  }
  return mask;
}

/** Fills the union of `polygons` (see rasterizePolygons) with `color` at opacity `alpha`. */
export function fillPolygons(image: RgbImage, polygons: readonly (readonly number[])[], color: Rgb, alpha = 1): void {
  const mask = rasterizePolygons(polygons, image.height, image.width);
  for (let i = 0; i < mask.length; i++) {
    if (mask[i]) blendPixel(image, i % image.width, Math.floor(i / image.width), color, alpha);
  }
}
