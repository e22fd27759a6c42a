import type { RgbImage } from '../io/image-types.js';
import { cloneRgbImage } from './image.js';
import { blendMask, drawMaskContour } from './mask.js';
import { strokeRect } from './rect.js';
import { drawText, measureText } from './font.js';
import { contrastingText, distinctColor, type Rgb } from './palette.js';

/** One thing to draw over an image: any of a pixel mask, a box and a label. */
export interface OverlayInstance {
  /** Row-major height*width, non-zero inside. */
  mask?: ArrayLike<number>;
  /** [x, y, width, height] in pixels. */
  box?: readonly [number, number, number, number];
  label?: string;
  /** Where the label's top-left goes; default the box's top-left corner, else the mask's first pixel. */
  labelAt?: readonly [number, number];
  color?: Rgb;
}

export interface OverlayOptions {
  maskAlpha?: number;
  contours?: boolean;
  boxThickness?: number;
  labelScale?: number;
  /**
   * Leave out a label whose tag would cover one drawn for a later instance (later ones sit on
   * top: with instances in score order, the better one keeps its label), so that many
   * overlapping low-score instances do not pile their tags up into an unreadable heap.
   */
  skipOverlappingLabels?: boolean;
}

/**
 * A copy of `image` with masks tinted (then outlined), boxes drawn and labels on filled tags at
 * each box's top-left corner (or the mask's first pixel when there is no box). Masks are drawn
 * before any box or label so that labels stay readable.
 */
export function drawOverlays(
  image: RgbImage,
  instances: readonly OverlayInstance[],
  options: OverlayOptions = {},
): RgbImage {
  const out = cloneRgbImage(image);
  const colors = instances.map((inst, i) => inst.color ?? distinctColor(i));
  instances.forEach((inst, i) => {
    if (inst.mask === undefined) return;
    blendMask(out, inst.mask, colors[i]!, options.maskAlpha ?? 0.45);
  });
  if (options.contours ?? true) {
    instances.forEach((inst, i) => {
      if (inst.mask !== undefined) drawMaskContour(out, inst.mask, colors[i]!);
    });
  }
  instances.forEach((inst, i) => {
    if (inst.box !== undefined) {
      const [x, y, w, h] = inst.box;
      strokeRect(out, x, y, w, h, colors[i]!, options.boxThickness ?? 1);
    }
  });
  const scale = options.labelScale ?? 1;
  const tags = instances.map((inst) => {
    if (inst.label === undefined) return null;
    const anchor = labelAnchor(inst, image.width);
    if (anchor === undefined) return null;
    const size = measureText(inst.label, scale);
    const x = Math.max(scale, Math.min(anchor[0] + scale, image.width - size.width - scale));
    const y = Math.max(scale, Math.min(anchor[1] + scale, image.height - size.height - scale));
    return { text: inst.label, x, y, width: size.width, height: size.height };
  });
  if (options.skipOverlappingLabels) {
    const kept: { x: number; y: number; width: number; height: number }[] = [];
    for (let i = tags.length - 1; i >= 0; i--) {
      const t = tags[i];
      if (!t) continue;
      if (
        kept.some(
          (k) =>
            t.x < k.x + k.width + scale &&
            k.x < t.x + t.width + scale &&
            t.y < k.y + k.height + scale &&
            k.y < t.y + t.height + scale,
        )
      )
        tags[i] = null;
      else kept.push(t);
    }
  }
  tags.forEach((t, i) => {
    if (t)
      drawText(out, t.text, t.x, t.y, {
        color: contrastingText(colors[i]!),
        background: colors[i]!,
        backgroundAlpha: 0.85,
        scale,
      });
  });
  return out;
}

function labelAnchor(inst: OverlayInstance, width: number): readonly [number, number] | undefined {
  if (inst.labelAt !== undefined) return inst.labelAt;
  if (inst.box !== undefined) return [inst.box[0], inst.box[1]];
  if (inst.mask === undefined) return undefined;
  for (let i = 0; i < inst.mask.length; i++) if (inst.mask[i]) return [i % width, Math.floor(i / width)];
  return undefined;
}
