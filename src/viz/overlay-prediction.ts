import type { RgbImage } from '../io/image-types.js';
import type { Prediction } from '../inference/results.js';
import type { CompressedRle } from '../structures/rle.js';
import { decodeRle } from '../structures/rle.js';
import { decompressRle } from '../structures/rle-string.js';
import { drawOverlays, type OverlayInstance } from './overlay.js';
import { distinctColor, type Rgb } from './palette.js';

/** What drawInstances draws; everything is on by default. */
export interface DrawInstancesOptions {
  /** Instances scoring below this are left out (default 0: all that the prediction holds). */
  scoreThreshold?: number;
  masks?: boolean;
  boxes?: boolean;
  /** Prompt text and score on a tag at each box's corner. */
  labels?: boolean;
  /** Also draw each sentence's best match (grounding) when the instances do not already hold it. */
  grounding?: boolean;
  /** Most instances drawn, best first (default 100). */
  maxInstances?: number;
  maskAlpha?: number;
  /** Font magnification; default grows with the image (1 up to 749 pixels on the long side, 2 from 750, ...). */
  labelScale?: number;
  boxThickness?: number;
  /** Longest label text before it is shortened with '...' (default 28 characters). */
  maxLabelChars?: number;
  /** Leave out labels that would cover a better instance's label (see OverlayOptions). */
  skipOverlappingLabels?: boolean;
  /** Text added to the labels of grounding matches under scoreThreshold (drawn anyway when given). */
  belowThresholdNote?: string;
}

/** Font magnification that keeps labels readable when a picture is shown at screen size. */
export function defaultLabelScale(longSide: number): number {
  return Math.max(1, Math.round(longSide / 500));
}

/** The colour of prompt `index` everywhere (overlays, semantic map, legends, the web page). */
export function promptColor(index: number): Rgb {
  return distinctColor(index);
}

/** A prompt's text shortened to `max` characters for a label tag. */
export function shortLabel(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 3))}...`;
}

/** The row-major mask of a compressed RLE, checked against the image it is drawn on. */
export function maskPixels(mask: CompressedRle, width: number, height: number, what = 'mask'): Uint8Array {
  if (mask.size[0] !== height || mask.size[1] !== width) {
    throw new Error(`${what}: mask is ${mask.size[1]}x${mask.size[0]} but the image is ${width}x${height}`);
  }
  return decodeRle(decompressRle(mask));
}

interface Drawable {
  promptIndex: number;
  text: string;
  score: number;
  box: [number, number, number, number];
  mask: CompressedRle | null;
  /** Appended to the label (a grounding match under the threshold). */
  note?: string;
  /** Drawn whatever its score. */
  always?: boolean;
}

/**
 * A copy of `image` with the prediction's instances drawn on it: masks tinted in their prompt's
 * colour and outlined, boxes, and tags reading "prompt 0.87". Higher-scoring instances are
 * drawn last, so they sit on top. The prediction must be for an image of this size.
 */
export function drawInstances(image: RgbImage, prediction: Prediction, options: DrawInstancesOptions = {}): RgbImage {
  if (prediction.width !== image.width || prediction.height !== image.height) {
    throw new Error(
      `drawInstances: the prediction is for a ${prediction.width}x${prediction.height} image, this one is ${image.width}x${image.height}`,
    );
  }
  const threshold = options.scoreThreshold ?? 0;
  const items: Drawable[] = prediction.instances.map((inst) => ({
    promptIndex: inst.promptIndex,
    text: inst.prompt,
    score: inst.score,
    box: inst.box,
    mask: inst.mask,
  }));
  const note = options.belowThresholdNote;
  if (options.grounding ?? true) {
    const drawn = new Set(
      prediction.instances.filter((inst) => inst.score >= threshold).map((inst) => `${inst.promptIndex}:${inst.query}`),
    );
    for (const g of prediction.grounding) {
      // Every sentence's best match, when asked, even under the threshold (its label says so).
      const below = g.score < threshold;
      if (!drawn.has(`${g.promptIndex}:${g.query}`) && (!below || note !== undefined)) {
        items.push({
          promptIndex: g.promptIndex,
          text: g.sentence,
          score: g.score,
          box: g.box,
          mask: g.mask,
          ...(below ? { note, always: true } : {}),
        });
      }
    }
  }
  const chosen = items
    .filter((item) => item.score >= threshold || item.always)
    .sort((a, b) => b.score - a.score)
    .slice(0, options.maxInstances ?? 100)
    .reverse();
  const maxChars = options.maxLabelChars ?? 28;
  const overlays: OverlayInstance[] = chosen.map((item) => {
    const [x1, y1, x2, y2] = item.box;
    const overlay: OverlayInstance = { color: promptColor(item.promptIndex) };
    if ((options.masks ?? true) && item.mask)
      overlay.mask = maskPixels(item.mask, image.width, image.height, `instance '${item.text}'`);
    if (options.boxes ?? true) overlay.box = [x1, y1, x2 - x1, y2 - y1];
    if (options.labels ?? true) {
      overlay.label = `${shortLabel(item.text, maxChars)} ${item.score.toFixed(2)}${item.note ?? ''}`;
      overlay.labelAt = [x1, y1];
    }
    return overlay;
  });
  const long = Math.max(image.width, image.height);
  return drawOverlays(image, overlays, {
    maskAlpha: options.maskAlpha ?? 0.45,
    boxThickness: options.boxThickness ?? Math.max(1, Math.round(long / 400)),
    labelScale: options.labelScale ?? defaultLabelScale(long),
    skipOverlappingLabels: options.skipOverlappingLabels ?? false,
  });
}
