import type { Rgb } from '../../viz/palette.js';

/**
 * The synthetic world's fixed vocabulary. Ids never change: things are 1-8, stuff 9-14, and the
 * same ids are the pixel values of the semantic PNGs (255 = ignore).
 */
export const THING_SHAPES = ['circle', 'square', 'triangle', 'star', 'hexagon', 'ring', 'cross', 'heart'] as const;
export type ThingShape = (typeof THING_SHAPES)[number];

export const STUFF_KINDS = ['sky', 'grass', 'water', 'sand', 'wall', 'gravel'] as const;
export type StuffKind = (typeof STUFF_KINDS)[number];

export type CategoryName = ThingShape | StuffKind;

export interface SynthCategory {
  id: number;
  name: CategoryName;
  supercategory: string;
  /** 1 for countable objects, 0 for amorphous regions (COCO panoptic convention). */
  isthing: 0 | 1;
}

const STUFF_SUPERCATEGORY: Record<StuffKind, string> = {
  sky: 'sky',
  grass: 'plant',
  water: 'water',
  sand: 'ground',
  wall: 'building',
  gravel: 'ground',
};

export const SYNTH_CATEGORIES: readonly SynthCategory[] = [
  ...THING_SHAPES.map((name, i): SynthCategory => ({ id: i + 1, name, supercategory: 'shape', isthing: 1 })),
  ...STUFF_KINDS.map(
    (name, i): SynthCategory => ({
      id: THING_SHAPES.length + i + 1,
      name,
      supercategory: STUFF_SUPERCATEGORY[name],
      isthing: 0,
    }),
  ),
];

/** Pixel value for "no label" in semantic PNGs. */
export const IGNORE_LABEL = 255;

export function categoryId(name: CategoryName): number {
  const c = SYNTH_CATEGORIES.find((cat) => cat.name === name);
  if (!c) throw new Error(`synthetic world: unknown category '${name}'`);
  return c.id;
}

export function categoryById(id: number): SynthCategory | undefined {
  return SYNTH_CATEGORIES.find((c) => c.id === id);
}

export function isThingShape(name: string): name is ThingShape {
  return (THING_SHAPES as readonly string[]).includes(name);
}

export function isStuffKind(name: string): name is StuffKind {
  return (STUFF_KINDS as readonly string[]).includes(name);
}

/** Thing colours: the names used in annotations and sentences, and the base RGB painted. */
export const THING_COLORS = {
  red: [215, 35, 35],
  orange: [245, 135, 20],
  yellow: [245, 225, 35],
  green: [40, 175, 55],
  cyan: [40, 205, 215],
  blue: [35, 70, 215],
  purple: [135, 50, 185],
  pink: [250, 135, 195],
} as const satisfies Record<string, Rgb>;
export type ThingColor = keyof typeof THING_COLORS;
export const THING_COLOR_NAMES = Object.keys(THING_COLORS) as ThingColor[];

export const THING_SIZES = ['small', 'large'] as const;
export type ThingSize = (typeof THING_SIZES)[number];

export function isThingColor(name: string): name is ThingColor {
  return Object.hasOwn(THING_COLORS, name);
}

export function isThingSize(name: string): name is ThingSize {
  return (THING_SIZES as readonly string[]).includes(name);
}
