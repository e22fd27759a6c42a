import type { RgbImage } from '../../io/image-types.js';
import type { Rng } from '../../util/random.js';
import {
  STUFF_KINDS,
  categoryId,
  type StuffKind,
  type ThingColor,
  type ThingShape,
  type ThingSize,
} from './categories.js';
import { rasterizeShape, type ShapePlacement } from './shapes.js';
import { DEFAULT_STUFF_LAYOUT, layoutStuff, type StuffLayoutOptions } from './stuff-layout.js';
import { createStuffTexture } from './stuff-textures.js';
import { paintThing, sampleThing } from './things.js';

export interface SynthConfig {
  width: number;
  height: number;
  /** Objects per image, inclusive range (fewer when placements keep failing on tiny images). */
  minObjects: number;
  maxObjects: number;
  /**
   * Occlusion limit: an object may be covered by later ones only while at least this fraction of
   * its own pixels stays visible; placements that would break it are redrawn.
   */
  minVisibleFraction: number;
  /** Placement tries per object before giving it up. */
  placementAttempts: number;
  stuff: StuffLayoutOptions;
}

export const DEFAULT_SYNTH_CONFIG: SynthConfig = {
  width: 256,
  height: 256,
  minObjects: 3,
  maxObjects: 8,
  minVisibleFraction: 0.6,
  placementAttempts: 40,
  stuff: DEFAULT_STUFF_LAYOUT,
};

export interface SceneThing {
  shape: ThingShape;
  color: ThingColor;
  size: ThingSize;
  placement: ShapePlacement;
  /** Visible pixels (row-major height*width), after every later object is drawn. */
  mask: Uint8Array;
  /** Pixel count of the unoccluded shape. */
  fullArea: number;
}

export interface SceneStuff {
  kind: StuffKind;
  /** Visible pixels of this stuff kind (all its pieces), row-major. */
  mask: Uint8Array;
}

/** One generated image with exact ground truth. */
export interface Scene {
  width: number;
  height: number;
  image: RgbImage;
  /** In drawing order: later ones are in front. */
  things: SceneThing[];
  /** One entry per stuff kind present, in STUFF_KINDS order. */
  stuff: SceneStuff[];
  /** Category id per pixel (every pixel is a thing or a stuff). */
  semantic: Uint8Array;
}

function count(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i]!;
  return n;
}

/**
 * Draws one scene. Stuff fills the image first (see layoutStuff), then objects are drawn one on
 * top of another; each new object is placed so that every earlier one keeps at least
 * `minVisibleFraction` of its pixels, so no annotated object is hidden or reduced to crumbs.
 * All randomness comes from `rng`, consumed in a fixed order, so a seed fixes the scene exactly.
 */
export function generateScene(config: SynthConfig, rng: Rng): Scene {
  const { width, height } = config;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 16 || height < 16) {
    throw new Error(`generateScene: image size must be integers of at least 16, got ${width}x${height}`);
  }
  if (!(config.minObjects >= 0 && config.maxObjects >= config.minObjects)) {
    throw new Error(
      `generateScene: objects per image must satisfy 0 <= min <= max, got ${config.minObjects}..${config.maxObjects}`,
    );
  }
  const stuffLabels = layoutStuff(width, height, rng, config.stuff);
  const image: RgbImage = { width, height, data: new Uint8Array(width * height * 3) };
  const painters = STUFF_KINDS.map((kind) =>
    stuffLabels.includes(STUFF_KINDS.indexOf(kind)) ? createStuffTexture(kind, width, height, rng) : undefined,
  );
  for (let i = 0; i < width * height; i++)
    painters[stuffLabels[i]!]!(i % width, Math.floor(i / width), image.data, 3 * i);

  const wanted = rng.int(config.minObjects, config.maxObjects);
  const things: SceneThing[] = [];
  for (let k = 0; k < wanted; k++) {
    for (let attempt = 0; attempt < config.placementAttempts; attempt++) {
      const spec = sampleThing(rng, width, height);
      const full = rasterizeShape(spec.placement, width, height);
      const pixels: number[] = [];
      for (let i = 0; i < full.length; i++) if (full[i]) pixels.push(i);
      if (pixels.length < 8) continue;
      const keepsOthersVisible = things.every((t) => {
        let covered = 0;
        for (const i of pixels) covered += t.mask[i]!;
        return count(t.mask) - covered >= config.minVisibleFraction * t.fullArea;
      });
      if (!keepsOthersVisible) continue;
      for (const t of things) for (const i of pixels) t.mask[i] = 0;
      paintThing(image, spec, full);
      things.push({
        shape: spec.shape,
        color: spec.color,
        size: spec.size,
        placement: spec.placement,
        mask: full,
        fullArea: pixels.length,
      });
      break;
    }
  }

  const semantic = new Uint8Array(width * height);
  const stuffIds = STUFF_KINDS.map((kind) => categoryId(kind));
  for (let i = 0; i < semantic.length; i++) semantic[i] = stuffIds[stuffLabels[i]!]!;
  const covered = new Uint8Array(width * height);
  for (const t of things) {
    const id = categoryId(t.shape);
    for (let i = 0; i < semantic.length; i++) {
      if (t.mask[i]) {
        semantic[i] = id;
        covered[i] = 1;
      }
    }
  }
  const stuff: SceneStuff[] = [];
  STUFF_KINDS.forEach((kind, k) => {
    const mask = new Uint8Array(width * height);
    let any = false;
    for (let i = 0; i < mask.length; i++) {
      if (stuffLabels[i] === k && !covered[i]) {
        mask[i] = 1;
        any = true;
      }
    }
    if (any) stuff.push({ kind, mask });
  });
  return { width, height, image, things, stuff, semantic };
}
