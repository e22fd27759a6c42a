import { resizeMask, maskToBox } from '../../structures/bitmap.js';
import type { Rng } from '../../util/random.js';
import type { Sample, SampleInstance } from '../sample.js';
import type { BoxXYXY } from '../types.js';
import {
  cropImage,
  cropMask,
  flipImageHorizontal,
  flipMaskHorizontal,
  resizeImageBilinear,
} from '../../io/image-ops.js';
import { hasOrdinalWord, swapLeftRight } from './sentence-words.js';
import { getOrThrow } from '../../util/checked.js';

export interface AugmentOptions {
  /** Side of the square training canvas; samples come out at most this large (the batcher pads). */
  size: number;
  /** Probability of a horizontal flip. */
  flipProbability: number;
  /** Large-scale jitter: the image is scaled to fit `size * s`, s uniform in this range. */
  scaleRange: [number, number];
  /** Crop a random size x size window when the scaled image is larger (else scale it to fit). */
  crop: boolean;
  /** Objects smaller than this (pixels, either side) after the transform are dropped. */
  minSize: number;
}

/**
 * Random flip, scale jitter and fixed-size crop (detectron2's ResizeScale + FixedSizeCrop).
 * Flipping swaps "left" and "right" in sentences; samples whose sentences pick objects by order
 * or extreme position ("second", "leftmost") are never cropped, only scaled to fit.
 */
export function augmentSample(sample: Sample, rng: Rng, options: AugmentOptions): Sample {
  let out = sample;
  if (rng.next() < options.flipProbability) out = flipSample(out);
  const [lo, hi] = options.scaleRange;
  const s = lo + (hi - lo) * rng.next();
  const { width, height } = out.image;
  const mayCrop = options.crop && !(out.promptKind === 'sentence' && out.prompts.some(hasOrdinalWord));
  const scale = jitteredScale(width, height, options.size, s, mayCrop);
  const newW = Math.max(1, Math.round(width * scale));
  const newH = Math.max(1, Math.round(height * scale));
  out = resizeSample(out, newW, newH);
  if (newW > options.size || newH > options.size) {
    const cw = Math.min(newW, options.size);
    const ch = Math.min(newH, options.size);
    out = cropSample(out, rng.int(0, newW - cw), rng.int(0, newH - ch), cw, ch);
  }
  return dropSmall(out, options.minSize);
}

/**
 * The scale augmentSample shows a width x height image at: its fit to `size` times `jitter`, and
 * never past the fit when the image may not be cropped (the pretraining's object crops use the same).
 */
export function jitteredScale(width: number, height: number, size: number, jitter: number, mayCrop: boolean): number {
  const scale = Math.min((size * jitter) / width, (size * jitter) / height);
  return mayCrop ? scale : Math.min(scale, size / width, size / height);
}

export function flipSample(sample: Sample): Sample {
  const { width, height } = sample.image;
  return {
    ...sample,
    image: flipImageHorizontal(sample.image),
    prompts: sample.promptKind === 'sentence' ? sample.prompts.map(swapLeftRight) : sample.prompts,
    instances: sample.instances.map((inst) => ({
      ...inst,
      box: [width - inst.box[2], inst.box[1], width - inst.box[0], inst.box[3]] as BoxXYXY,
      ...(inst.mask ? { mask: flipMaskHorizontal(inst.mask, width, height) } : {}),
    })),
  };
}

export function resizeSample(sample: Sample, newW: number, newH: number): Sample {
  const { width, height } = sample.image;
  if (newW === width && newH === height) return sample;
  const sx = newW / width;
  const sy = newH / height;
  return {
    ...sample,
    image: resizeImageBilinear(sample.image, newW, newH),
    instances: sample.instances.map((inst) => {
      if (!inst.mask)
        return { ...inst, box: [inst.box[0] * sx, inst.box[1] * sy, inst.box[2] * sx, inst.box[3] * sy] as BoxXYXY };
      const mask = resizeMask(inst.mask, height, width, newH, newW, 'nearest');
      return { ...inst, mask, box: maskToBox(mask, newH, newW) };
    }),
  };
}

/** Keeps the window [x, x + w) x [y, y + h); boxes are clipped, mask boxes recomputed. */
export function cropSample(sample: Sample, x: number, y: number, w: number, h: number): Sample {
  const imageWidth = sample.image.width;
  return {
    ...sample,
    image: cropImage(sample.image, x, y, w, h),
    instances: sample.instances.map((inst) => {
      if (!inst.mask) {
        const b = inst.box;
        return {
          ...inst,
          box: [clamp(b[0] - x, w), clamp(b[1] - y, h), clamp(b[2] - x, w), clamp(b[3] - y, h)] as BoxXYXY,
        };
      }
      const mask = cropMask(inst.mask, imageWidth, x, y, w, h);
      return { ...inst, mask, box: maskToBox(mask, h, w) };
    }),
  };
}

/**
 * Drops objects that became too small or empty; sentence prompts that lost every object are
 * dropped too (the phrase would otherwise turn into a false negative) and labels renumbered.
 */
export function dropSmall(sample: Sample, minSize: number): Sample {
  const kept = sample.instances.filter(
    (inst) => inst.box[2] - inst.box[0] >= minSize && inst.box[3] - inst.box[1] >= minSize,
  );
  if (sample.promptKind !== 'sentence') return { ...sample, instances: kept };
  const used = [...new Set(kept.map((i) => i.label))].sort((a, b) => a - b);
  const remap = new Map(used.map((old, i) => [old, i]));
  return {
    ...sample,
    prompts: used.map((i) => sample.prompts[i]!),
    instances: kept.map(
      (inst): SampleInstance => ({ ...inst, label: getOrThrow(remap, inst.label, 'dropSmall: kept labels') }),
    ),
  };
}

function clamp(v: number, hi: number): number {
  return Math.min(Math.max(v, 0), hi);
}
