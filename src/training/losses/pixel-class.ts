import { tf } from '../../engine/engine.js';
import type { ImageTargets } from '../../data/batch.js';
import { sigmoidFocalLoss } from './focal.js';
import { downsampleMaskArea } from './mask-targets.js';

/**
 * Dense prompt targets for the pixel-class loss (a training aid, not part of APE): on the mask
 * head's h x w grid, target[b, pixel, p] is the share of the cell covered by image b's objects of
 * prompt p; weight[b, pixel, p] is 0 outside the image, for images without masks, and where the
 * image's prompt weights say so (federated sets), as the class loss weighs queries.
 */
export function pixelClassTargets(targets: ImageTargets[], canvas: number, h: number, w: number, numPrompts: number) {
  const b = targets.length;
  const cells = h * w;
  const target = new Float32Array(b * cells * numPrompts);
  const weight = new Float32Array(b * cells * numPrompts);
  let positive = 0;
  targets.forEach((t, i) => {
    const masks = t.masks;
    if (!masks) return;
    const base = i * cells * numPrompts;
    t.labels.forEach((label, g) => {
      if (label < 0) return;
      const soft = downsampleMaskArea(masks[g]!, canvas, canvas, h, w);
      for (let c = 0; c < cells; c++) {
        const k = base + c * numPrompts + label;
        if (soft[c]! > target[k]!) target[k] = soft[c]!;
      }
    });
    const positiveOnly = new Set(t.positiveOnlyPrompts);
    // Cells whose centre lies inside the unpadded image.
    const cellH = canvas / h;
    const cellW = canvas / w;
    for (let y = 0; y < h; y++) {
      if ((y + 0.5) * cellH > t.height) break;
      for (let x = 0; x < w; x++) {
        if ((x + 0.5) * cellW > t.width) break;
        const row = base + (y * w + x) * numPrompts;
        for (let p = 0; p < numPrompts; p++) {
          const pw = t.promptWeights ? (t.promptWeights[p] ?? 1) : 1;
          weight[row + p] = positiveOnly.has(p) ? pw * target[row + p]! : pw;
          positive += weight[row + p]! * target[row + p]!;
        }
      }
    }
  });
  return { target, weight, positive };
}

/**
 * Sigmoid focal loss of per-pixel prompt logits [B, h*w, P] against `pixelClassTargets`, summed
 * and divided by the covered area (the sum of positive targets, in cells), as a dense detector
 * divides by its positive anchors.
 */
export function pixelClassLoss(
  logits: tf.Tensor3D,
  targets: ImageTargets[],
  canvas: number,
  grid: [number, number],
  options: { alpha: number; gamma: number },
): tf.Scalar {
  const [b, cells, p] = logits.shape;
  const [h, w] = grid;
  if (cells !== h * w || b !== targets.length)
    throw new Error(
      `pixelClassLoss: logits [${logits.shape.join(', ')}] do not fit ${targets.length} images of ${h}x${w} cells`,
    );
  const t = pixelClassTargets(targets, canvas, h, w, p);
  return tf.tidy(() =>
    sigmoidFocalLoss(logits, tf.tensor3d(t.target, [b, cells, p]), t.positive, {
      alpha: options.alpha,
      gamma: options.gamma,
      weights: tf.tensor3d(t.weight, [b, cells, p]),
    }),
  );
}
