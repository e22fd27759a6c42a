import { tf } from '../engine/engine.js';
import { imageChannels, type RgbImage } from '../io/image-types.js';
import { resizeImageBilinear } from '../io/image-ops.js';
import type { ModelBatch } from '../modeling/ape-network.js';

/** How an original image maps into the network input. */
export interface ImagePlacement {
  /** Original size. */
  width: number;
  height: number;
  /** Size after resizing (the valid region at the top-left of the padded input). */
  resizedWidth: number;
  resizedHeight: number;
}

/** detectron2 ResizeShortestEdge(size, max_size=size): the long side becomes `size`. */
export function resizedSize(width: number, height: number, size: number): [number, number] {
  const scale = size / Math.max(width, height);
  return [Math.max(1, Math.floor(width * scale + 0.5)), Math.max(1, Math.floor(height * scale + 0.5))];
}

/**
 * Resizes each image so its long side is `size` and places it at the top-left of a size x size
 * canvas (the rest is padding, zeroed after normalisation by the network).
 */
export function prepareImages(
  images: readonly RgbImage[],
  size: number,
): { batch: ModelBatch; placements: ImagePlacement[] } {
  if (images.length === 0) throw new Error('prepareImages: no images');
  const canvas = new Float32Array(images.length * size * size * 3);
  const placements = images.map((image, i) => {
    if (imageChannels(image, `image ${i}`) !== 3)
      throw new Error(`image ${i}: expected RGB data (${image.width * image.height * 3} bytes)`);
    const [w, h] = resizedSize(image.width, image.height, size);
    const resized = resizeImageBilinear(image, w, h);
    const base = i * size * size * 3;
    for (let y = 0; y < h; y++) {
      const row = resized.data.subarray(y * w * 3, (y + 1) * w * 3);
      canvas.set(row, base + y * size * 3);
    }
    return { width: image.width, height: image.height, resizedWidth: w, resizedHeight: h };
  });
  return {
    batch: {
      images: tf.tensor4d(canvas, [images.length, size, size, 3]),
      sizes: placements.map((p) => [p.resizedHeight, p.resizedWidth]),
    },
    placements,
  };
}
