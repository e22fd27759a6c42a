import { normalizeBox, xyxyToCxcywh } from '../structures/boxes.js';
import type { Sample } from './sample.js';
import type { LossSwitches } from './sampler/loss-switches.js';
import { required } from '../util/checked.js';

/** One image's targets, in the batch's prompt numbering. */
export interface ImageTargets {
  /** Batch prompt index per object; -1 for class-agnostic objects. */
  labels: Int32Array;
  /**
   * [G, 4] cxcywh, normalised by the image's own (unpadded) width and height, as detectron2/detrex
   * targets are and as the model's boxes are (its valid ratios map them onto the padded canvas).
   */
  boxes: Float32Array;
  /** Binary masks at canvas size (size x size), or null when the sample has none. */
  masks: Uint8Array[] | null;
  /** Per-prompt class-loss weight for this image ([P], 0 = not trained), or null for all 1. */
  promptWeights: Float32Array | null;
  /** Prompts at which only this image's positives are trained. */
  positiveOnlyPrompts: number[];
  /** The unpadded image size inside the canvas. */
  width: number;
  height: number;
}

/** A batch ready for the model and the criterion. */
export interface TrainingBatch {
  /** [B, size, size, 3] RGB 0..255 with each image at the top-left, zero after it (the model normalises). */
  images: Float32Array;
  /** Valid [height, width] of each image on the canvas. */
  sizes: [number, number][];
  batchSize: number;
  size: number;
  prompts: string[];
  /** Which prompts are sentences (fused with the image) rather than vocabulary names. */
  promptKind: 'vocabulary' | 'sentence';
  targets: ImageTargets[];
  switches: LossSwitches;
  dataset: string;
}

/**
 * Pads samples onto a square canvas and builds per-image targets. Vocabulary samples of one
 * dataset share their prompts; sentence samples contribute their own, merged by text, and each
 * image trains only its own sentences (another image's phrase may well be true of it too).
 */
export function collateBatch(samples: Sample[], size: number, switches: LossSwitches, dataset: string): TrainingBatch {
  if (samples.length === 0) throw new Error('collateBatch: no samples');
  const kind = samples[0]!.promptKind;
  const images = new Float32Array(samples.length * size * size * 3);
  let prompts: string[];
  const promptMaps: number[][] = [];
  if (kind === 'vocabulary') {
    prompts = samples[0]!.prompts;
    for (const s of samples) {
      if (s.promptKind !== 'vocabulary' || s.prompts.length !== prompts.length)
        throw new Error('collateBatch: samples of one batch must share their vocabulary');
      promptMaps.push(s.prompts.map((_, i) => i));
    }
  } else {
    const index = new Map<string, number>();
    prompts = [];
    for (const s of samples) {
      promptMaps.push(
        s.prompts.map((p) => {
          let i = index.get(p);
          if (i === undefined) {
            i = prompts.length;
            index.set(p, i);
            prompts.push(p);
          }
          return i;
        }),
      );
    }
  }
  const targets = samples.map((s, b): ImageTargets => {
    const { width, height, data } = s.image;
    if (width > size || height > size)
      throw new Error(`collateBatch: a ${width}x${height} sample does not fit the ${size} canvas`);
    const base = b * size * size * 3;
    for (let y = 0; y < height; y++) {
      const src = y * width * 3;
      images.set(data.subarray(src, src + width * 3), base + y * size * 3);
    }
    const map = promptMaps[b]!;
    const g = s.instances.length;
    const boxes = new Float32Array(g * 4);
    const labels = new Int32Array(g);
    s.instances.forEach((inst, i) => {
      boxes.set(normalizeBox(xyxyToCxcywh(inst.box), width, height), i * 4);
      labels[i] = inst.label < 0 ? -1 : map[inst.label]!;
    });
    let promptWeights: Float32Array | null = null;
    if (kind === 'sentence' && samples.length > 1) {
      promptWeights = new Float32Array(prompts.length);
      for (const p of map) promptWeights[p] = 1;
    } else if (s.promptWeights) {
      promptWeights = s.promptWeights;
    }
    return {
      labels,
      boxes,
      masks: s.hasMasks
        ? s.instances.map((inst) =>
            padMask(required(inst.mask, 'an instance mask of a sample with masks'), width, height, size),
          )
        : null,
      promptWeights,
      positiveOnlyPrompts: (s.positiveOnlyPrompts ?? []).map((p) => map[p]!),
      width,
      height,
    };
  });
  return {
    images,
    sizes: samples.map((s) => [s.image.height, s.image.width] as [number, number]),
    batchSize: samples.length,
    size,
    prompts,
    promptKind: kind,
    targets,
    switches,
    dataset,
  };
}

function padMask(mask: Uint8Array, width: number, height: number, size: number): Uint8Array {
  if (width === size && height === size) return mask;
  const out = new Uint8Array(size * size);
  for (let y = 0; y < height; y++) out.set(mask.subarray(y * width, (y + 1) * width), y * size);
  return out;
}
