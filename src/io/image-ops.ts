import type { RgbImage } from './image-types.js';

/** Pixel-level transforms of RGB images for augmentation (plain arrays, no tensors). */

export function flipImageHorizontal(image: RgbImage): RgbImage {
  const { width, height, data } = image;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    for (let x = 0; x < width; x++) {
      const s = row + x * 3;
      const d = row + (width - 1 - x) * 3;
      out[d] = data[s]!;
      out[d + 1] = data[s + 1]!;
      out[d + 2] = data[s + 2]!;
    }
  }
  return { width, height, data: out };
}

/**
 * Bilinear resize with half-pixel centres (align_corners=False). Downscaling by more than 2x
 * first averages whole blocks so that thin structures do not alias away.
 */
export function resizeImageBilinear(image: RgbImage, width: number, height: number): RgbImage {
  if (width === image.width && height === image.height) return image;
  let src = image;
  while (src.width >= 2 * width && src.height >= 2 * height) src = halve(src);
  const out = new Uint8Array(width * height * 3);
  const sx = src.width / width;
  const sy = src.height / height;
  for (let y = 0; y < height; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), src.height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, src.height - 1);
    const ay = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), src.width - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, src.width - 1);
      const ax = fx - x0;
      for (let c = 0; c < 3; c++) {
        const top = src.data[(y0 * src.width + x0) * 3 + c]! * (1 - ax) + src.data[(y0 * src.width + x1) * 3 + c]! * ax;
        const bottom =
          src.data[(y1 * src.width + x0) * 3 + c]! * (1 - ax) + src.data[(y1 * src.width + x1) * 3 + c]! * ax;
        out[(y * width + x) * 3 + c] = Math.round(top * (1 - ay) + bottom * ay);
      }
    }
  }
  return { width, height, data: out };
}

function halve(image: RgbImage): RgbImage {
  const width = Math.floor(image.width / 2);
  const height = Math.floor(image.height / 2);
  const out = new Uint8Array(width * height * 3);
  const w = image.width;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        const i = (2 * y * w + 2 * x) * 3 + c;
        out[(y * width + x) * 3 + c] =
          (image.data[i]! + image.data[i + 3]! + image.data[i + w * 3]! + image.data[i + w * 3 + 3]! + 2) >> 2;
      }
    }
  }
  return { width, height, data: out };
}

/** The window [x, x + width) x [y, y + height), which must lie inside the image. */
export function cropImage(image: RgbImage, x: number, y: number, width: number, height: number): RgbImage {
  if (x < 0 || y < 0 || x + width > image.width || y + height > image.height) {
    throw new Error(`cropImage: window ${x},${y} ${width}x${height} outside a ${image.width}x${image.height} image`);
  }
  const out = new Uint8Array(width * height * 3);
  for (let r = 0; r < height; r++) {
    const start = ((y + r) * image.width + x) * 3;
    out.set(image.data.subarray(start, start + width * 3), r * width * 3);
  }
  return { width, height, data: out };
}

export function flipMaskHorizontal(mask: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(mask.length);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) out[row + width - 1 - x] = mask[row + x]!;
  }
  return out;
}

export function cropMask(
  mask: Uint8Array,
  maskWidth: number,
  x: number,
  y: number,
  width: number,
  height: number,
): Uint8Array {
  const out = new Uint8Array(width * height);
  for (let r = 0; r < height; r++)
    out.set(mask.subarray((y + r) * maskWidth + x, (y + r) * maskWidth + x + width), r * width);
  return out;
}
