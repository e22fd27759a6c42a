import type { RgbImage } from '../../io/image-types.js';
import type { Rng } from '../../util/random.js';
import {
  THING_COLORS,
  THING_COLOR_NAMES,
  THING_SHAPES,
  type ThingColor,
  type ThingShape,
  type ThingSize,
} from './categories.js';
import type { ShapePlacement } from './shapes.js';

/** One object as drawn: what it is, where it is, and how it is painted. */
export interface ThingSpec {
  shape: ThingShape;
  color: ThingColor;
  size: ThingSize;
  placement: ShapePlacement;
  /** The colour actually painted: the named colour with a little jitter. */
  rgb: [number, number, number];
  /** Unit direction of the lighting gradient and its strength (brightness +-strength across the shape). */
  light: [number, number];
  lightStrength: number;
}

/**
 * Size classes as radius ranges, in fractions of the image's shorter side. The gap between them
 * (0.065 to 0.095) keeps "small" and "large" apart despite the jitter inside each class.
 */
export const SIZE_RADIUS: Record<ThingSize, readonly [number, number]> = {
  small: [0.045, 0.065],
  large: [0.095, 0.135],
};

/** Draws a random object whose shape lies fully inside a width x height image. */
export function sampleThing(rng: Rng, width: number, height: number): ThingSpec {
  const shape = rng.pick(THING_SHAPES);
  const color = rng.pick(THING_COLOR_NAMES);
  const size: ThingSize = rng.next() < 0.5 ? 'small' : 'large';
  const [lo, hi] = SIZE_RADIUS[size];
  const s = Math.min(width, height);
  const radius = Math.max(2.5, s * rng.uniform(lo, hi));
  const margin = radius * 1.02 + 1;
  const cx = rng.uniform(margin, Math.max(margin, width - margin));
  const cy = rng.uniform(margin, Math.max(margin, height - margin));
  // Hearts stay roughly upright; everything else turns freely.
  const rotation = shape === 'heart' ? rng.uniform(-0.5, 0.5) : rng.uniform(0, 2 * Math.PI);
  const base = THING_COLORS[color];
  const rgb: [number, number, number] = [
    clamp(base[0] + 12 * rng.normal()),
    clamp(base[1] + 12 * rng.normal()),
    clamp(base[2] + 12 * rng.normal()),
  ];
  const angle = rng.uniform(0, 2 * Math.PI);
  return {
    shape,
    color,
    size,
    placement: { shape, cx, cy, radius, rotation },
    rgb,
    light: [Math.cos(angle), Math.sin(angle)],
    lightStrength: rng.uniform(0.1, 0.28),
  };
}

function clamp(v: number): number {
  return v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
}

/**
 * Paints the object over `image` wherever `mask` (its full, unoccluded mask) is set: a linear
 * lighting gradient across the shape and a darker one-pixel rim, so that touching objects of
 * one colour stay separable by eye and by a model.
 */
export function paintThing(image: RgbImage, spec: ThingSpec, mask: Uint8Array): void {
  const { width: w, height: h, data } = image;
  const { cx, cy, radius } = spec.placement;
  const reach = radius * 1.05 + 1;
  const x0 = Math.max(0, Math.floor(cx - reach));
  const x1 = Math.min(w - 1, Math.ceil(cx + reach));
  for (let y = Math.max(0, Math.floor(cy - reach)); y <= Math.min(h - 1, Math.ceil(cy + reach)); y++) {
    for (let x = x0; x <= x1; x++) {
      const i = y * w + x;
      if (!mask[i]) continue;
      const t = ((x + 0.5 - cx) * spec.light[0] + (y + 0.5 - cy) * spec.light[1]) / radius;
      let f = 0.97 + spec.lightStrength * t;
      const rim =
        x === 0 ||
        !mask[i - 1] ||
        x === w - 1 ||
        !mask[i + 1] ||
        y === 0 ||
        !mask[i - w] ||
        y === h - 1 ||
        !mask[i + w];
      if (rim) f *= 0.7;
      data[3 * i] = clamp(spec.rgb[0] * f);
      data[3 * i + 1] = clamp(spec.rgb[1] * f);
      data[3 * i + 2] = clamp(spec.rgb[2] * f);
    }
  }
}
