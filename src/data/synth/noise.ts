import type { Rng } from '../../util/random.js';

/**
 * Smooth 2-D value noise: random values on an integer lattice, blended with a smoothstep, so that
 * nearby points get similar values. The lattice comes from the Rng, so a seed fixes the texture.
 */
export type Noise2 = (x: number, y: number) => number;

const TABLE = 256;

export function createValueNoise(rng: Rng): Noise2 {
  const values = new Float64Array(TABLE);
  for (let i = 0; i < TABLE; i++) values[i] = rng.next();
  const perm = new Uint8Array(TABLE);
  for (let i = 0; i < TABLE; i++) perm[i] = i;
  for (let i = TABLE - 1; i > 0; i--) {
    const j = rng.int(0, i);
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
  }
  const lattice = (ix: number, iy: number): number => values[perm[(perm[ix & 255]! + iy) & 255]!]!;
  return (x, y) => {
    const x0 = Math.floor(x);
    const y0 = Math.floor(y);
    const fx = x - x0;
    const fy = y - y0;
    const sx = fx * fx * (3 - 2 * fx);
    const sy = fy * fy * (3 - 2 * fy);
    const a = lattice(x0, y0);
    const b = lattice(x0 + 1, y0);
    const c = lattice(x0, y0 + 1);
    const d = lattice(x0 + 1, y0 + 1);
    return a + (b - a) * sx + (c - a) * sy + (a - b - c + d) * sx * sy;
  };
}

/** Fractal sum of `octaves` noise layers (each twice the frequency, half the weight), in [0, 1]. */
export function fractalNoise(noise: Noise2, x: number, y: number, octaves: number): number {
  let sum = 0;
  let weight = 1;
  let total = 0;
  let f = 1;
  for (let o = 0; o < octaves; o++) {
    sum += weight * noise(x * f + o * 17.3, y * f + o * 31.7);
    total += weight;
    weight *= 0.5;
    f *= 2;
  }
  return sum / total;
}

/** A fixed integer hash of a lattice point and a seed, in [0, 1): per-pixel speckle without state. */
export function hash2(x: number, y: number, seed: number): number {
  let h = (Math.imul(x | 0, 0x27d4eb2d) ^ Math.imul(y | 0, 0x165667b1) ^ Math.imul(seed | 0, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}
