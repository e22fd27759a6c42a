/**
 * Connected components of binary masks: labelling, hole filling, and splitting a mask into
 * one mask per component (APE trains stuff classes as instances this way).
 */

export type Connectivity = 4 | 8;

export interface LabeledComponents {
  /** 0 = background; components are numbered 1..count in raster order of their first pixel. */
  labels: Int32Array;
  count: number;
  /** areas[k] is the pixel count of component k + 1. */
  areas: number[];
}

function checkMask(mask: ArrayLike<number>, h: number, w: number, what: string): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0)
    throw new Error(`${what}: size must be non-negative integers, got ${h}x${w}`);
  if (mask.length !== h * w) throw new Error(`${what}: mask has ${mask.length} values, ${h}x${w} needs ${h * w}`);
}

/**
 * Flood-fills from `seed` over pixels where `inside(i)` holds and labels[i] is 0, writing
 * `label`; returns the area. The queue is preallocated by the caller (one per labelling).
 */
function flood(
  seed: number,
  label: number,
  labels: Int32Array,
  inside: (i: number) => boolean,
  h: number,
  w: number,
  connectivity: Connectivity,
  queue: Int32Array,
): number {
  let head = 0;
  let tail = 0;
  queue[tail++] = seed;
  labels[seed] = label;
  while (head < tail) {
    const i = queue[head++]!;
    const y = (i / w) | 0;
    const x = i - y * w;
    for (let dy = -1; dy <= 1; dy++) {
      const ny = y + dy;
      if (ny < 0 || ny >= h) continue;
      for (let dx = -1; dx <= 1; dx++) {
        if (dx === 0 && dy === 0) continue;
        if (connectivity === 4 && dx !== 0 && dy !== 0) continue;
        const nx = x + dx;
        if (nx < 0 || nx >= w) continue;
        const j = ny * w + nx;
        if (labels[j] === 0 && inside(j)) {
          labels[j] = label;
          queue[tail++] = j;
        }
      }
    }
  }
  return tail;
}

/** Labels the foreground (non-zero) components; 8-connectivity unless told otherwise. */
export function labelComponents(
  mask: ArrayLike<number>,
  h: number,
  w: number,
  connectivity: Connectivity = 8,
): LabeledComponents {
  checkMask(mask, h, w, 'labelComponents');
  if (connectivity !== 4 && connectivity !== 8)
    throw new Error(`labelComponents: connectivity must be 4 or 8, got ${connectivity}`);
  const labels = new Int32Array(h * w);
  const queue = new Int32Array(h * w);
  const areas: number[] = [];
  const inside = (i: number) => mask[i] !== 0;
  for (let i = 0; i < h * w; i++) {
    if (mask[i] !== 0 && labels[i] === 0)
      areas.push(flood(i, areas.length + 1, labels, inside, h, w, connectivity, queue));
  }
  return { labels, count: areas.length, areas };
}

/**
 * Fills holes: background regions that do not reach the image border (background is taken
 * 4-connected, the dual of 8-connected foreground, as scipy's binary_fill_holes).
 */
export function fillHoles(mask: ArrayLike<number>, h: number, w: number): Uint8Array {
  checkMask(mask, h, w, 'fillHoles');
  const outside = new Int32Array(h * w);
  const queue = new Int32Array(h * w);
  const background = (i: number) => mask[i] === 0;
  const seed = (i: number) => {
    if (mask[i] === 0 && outside[i] === 0) flood(i, 1, outside, background, h, w, 4, queue);
  };
  for (let x = 0; x < w; x++) {
    seed(x);
    seed((h - 1) * w + x);
  }
  for (let y = 0; y < h; y++) {
    seed(y * w);
    seed(y * w + w - 1);
  }
  const out = new Uint8Array(h * w);
  for (let i = 0; i < h * w; i++) out[i] = outside[i] === 0 ? 1 : 0;
  return out;
}

export interface SplitOptions {
  /** Components smaller than this many pixels are dropped (default 1: keep all). */
  minArea?: number;
  /** Fill each component's holes before returning it (default false). */
  fillHoles?: boolean;
  connectivity?: Connectivity;
}

/** One full-size 0/1 mask per connected component, in raster order of the components. */
export function splitComponents(
  mask: ArrayLike<number>,
  h: number,
  w: number,
  options: SplitOptions = {},
): Uint8Array[] {
  const { labels, count, areas } = labelComponents(mask, h, w, options.connectivity ?? 8);
  const minArea = options.minArea ?? 1;
  // One pass over the labels writes every kept component's pixels.
  const slot = new Int32Array(count + 1).fill(-1);
  const parts: Uint8Array[] = [];
  for (let k = 1; k <= count; k++) {
    if (areas[k - 1]! >= minArea) {
      slot[k] = parts.length;
      parts.push(new Uint8Array(h * w));
    }
  }
  for (let i = 0; i < h * w; i++) {
    const s = slot[labels[i]!]!;
    if (labels[i] !== 0 && s >= 0) parts[s]![i] = 1;
  }
  return options.fillHoles ? parts.map((p) => fillHoles(p, h, w)) : parts;
}
