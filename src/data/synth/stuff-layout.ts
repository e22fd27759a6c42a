import type { Rng } from '../../util/random.js';
import { STUFF_KINDS, type StuffKind } from './categories.js';
import { createValueNoise } from './noise.js';
import { connectedPieces } from './pieces.js';

export interface StuffLayoutOptions {
  /** Number of seed regions (several may share a kind, which makes disconnected pieces). */
  minRegions: number;
  maxRegions: number;
  /** Distinct stuff kinds per image. */
  minKinds: number;
  maxKinds: number;
  /** Pieces smaller than this fraction of the image are absorbed by their neighbours. */
  minPieceFraction: number;
}

export const DEFAULT_STUFF_LAYOUT: StuffLayoutOptions = {
  minRegions: 3,
  maxRegions: 7,
  minKinds: 2,
  maxKinds: 4,
  minPieceFraction: 0.02,
};

/**
 * Splits the image into stuff regions: a Voronoi diagram of random seeds (with random weights,
 * so regions differ in size) computed on coordinates bent by smooth noise, which gives wavy
 * boundaries; sky seeds sit in the upper half. Slivers below `minPieceFraction` are then handed
 * to the neighbour they touch most. Returns, per pixel (row-major), an index into STUFF_KINDS.
 */
export function layoutStuff(
  width: number,
  height: number,
  rng: Rng,
  options: StuffLayoutOptions = DEFAULT_STUFF_LAYOUT,
): Uint8Array {
  const kindCount = rng.int(options.minKinds, Math.min(options.maxKinds, STUFF_KINDS.length));
  const kinds = rng.shuffle([...STUFF_KINDS]).slice(0, kindCount);
  const regionCount = rng.int(Math.max(options.minRegions, kindCount), Math.max(options.maxRegions, kindCount));
  // Every chosen kind gets one seed; the rest repeat kinds.
  const seedKinds: StuffKind[] = [...kinds];
  while (seedKinds.length < regionCount) seedKinds.push(rng.pick(kinds));
  const seeds = seedKinds.map((kind) => ({
    kind: STUFF_KINDS.indexOf(kind),
    x: rng.uniform(0, width),
    y: kind === 'sky' ? rng.uniform(0.02, 0.45) * height : rng.uniform(0, height),
    weight: rng.uniform(0.7, 1.3),
  }));
  const s = Math.min(width, height);
  const warpX = createValueNoise(rng);
  const warpY = createValueNoise(rng);
  const amplitude = 0.14 * s;
  const scale = 0.28 * s;
  const labels = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const wx = x + 0.5 + amplitude * (2 * warpX(x / scale, y / scale) - 1);
      const wy = y + 0.5 + amplitude * (2 * warpY(x / scale + 7.1, y / scale + 3.3) - 1);
      let best = 0;
      let bestD = Infinity;
      for (let k = 0; k < seeds.length; k++) {
        const sd = seeds[k]!;
        const d = Math.hypot(wx - sd.x, wy - sd.y) / sd.weight;
        if (d < bestD) {
          bestD = d;
          best = k;
        }
      }
      labels[y * width + x] = seeds[best]!.kind;
    }
  }
  absorbSmallPieces(labels, width, height, Math.max(1, Math.round(options.minPieceFraction * width * height)));
  return labels;
}

/** Gives every connected piece smaller than `minArea` to the label it borders most, until none is left. */
export function absorbSmallPieces(labels: Uint8Array, width: number, height: number, minArea: number): void {
  for (let pass = 0; pass < 8; pass++) {
    let changed = false;
    const present = [...new Set(labels)].sort((a, b) => a - b);
    if (present.length <= 1) return;
    for (const label of present) {
      const mask = new Uint8Array(labels.length);
      for (let i = 0; i < labels.length; i++) if (labels[i] === label) mask[i] = 1;
      for (const piece of connectedPieces(mask, height, width)) {
        if (piece.area >= minArea) continue;
        const border = new Map<number, number>();
        const bump = (j: number): void => {
          if (labels[j] !== label) border.set(labels[j]!, (border.get(labels[j]!) ?? 0) + 1);
        };
        for (const i of piece.pixels) {
          const x = i % width;
          if (x > 0) bump(i - 1);
          if (x < width - 1) bump(i + 1);
          if (i >= width) bump(i - width);
          if (i < labels.length - width) bump(i + width);
        }
        let target = -1;
        let most = 0;
        for (const [l, n] of [...border].sort((a, b) => a[0] - b[0])) {
          if (n > most) {
            most = n;
            target = l;
          }
        }
        if (target < 0) continue;
        for (const i of piece.pixels) labels[i] = target;
        changed = true;
      }
    }
    if (!changed) return;
  }
}
