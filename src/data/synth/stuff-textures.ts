import type { Rng } from '../../util/random.js';
import type { StuffKind } from './categories.js';
import { createValueNoise, fractalNoise, hash2, type Noise2 } from './noise.js';

/** Writes the colour of one pixel (x, y) into rgb[offset..offset+2]. */
export type TexturePainter = (x: number, y: number, rgb: Uint8Array, offset: number) => void;

function put(rgb: Uint8Array, o: number, r: number, g: number, b: number): void {
  rgb[o] = r <= 0 ? 0 : r >= 255 ? 255 : Math.round(r);
  rgb[o + 1] = g <= 0 ? 0 : g >= 255 ? 255 : Math.round(g);
  rgb[o + 2] = b <= 0 ? 0 : b >= 255 ? 255 : Math.round(b);
}

/** A base colour with a per-image multiplicative jitter on each channel. */
function jittered(rng: Rng, base: readonly [number, number, number], amount: number): [number, number, number] {
  return [
    base[0] * (1 + amount * rng.normal()),
    base[1] * (1 + amount * rng.normal()),
    base[2] * (1 + amount * rng.normal()),
  ];
}

/**
 * A painter for one stuff kind in one image. Pattern sizes are fractions of the image's shorter
 * side, so a small image looks like a shrunken large one; colours, phases and noise come from
 * `rng`, so every image's sky, water or wall is a little different.
 */
export function createStuffTexture(kind: StuffKind, width: number, height: number, rng: Rng): TexturePainter {
  const s = Math.min(width, height);
  const noise: Noise2 = createValueNoise(rng);
  const seed = rng.seed();
  switch (kind) {
    case 'sky': {
      const top = jittered(rng, [90, 155, 228], 0.06);
      const bottom = jittered(rng, [175, 212, 244], 0.04);
      const cloudiness = rng.uniform(0.5, 0.62);
      return (x, y, rgb, o) => {
        const t = y / height;
        let r = top[0] + (bottom[0] - top[0]) * t;
        let g = top[1] + (bottom[1] - top[1]) * t;
        let b = top[2] + (bottom[2] - top[2]) * t;
        const cloud = fractalNoise(noise, x / (s * 0.22), y / (s * 0.1), 3);
        const c = Math.min(0.85, Math.max(0, (cloud - cloudiness) * 3.5));
        r += (246 - r) * c;
        g += (246 - g) * c;
        b += (250 - b) * c;
        put(rgb, o, r, g, b);
      };
    }
    case 'grass': {
      const base = jittered(rng, [72, 140, 45], 0.07);
      return (x, y, rgb, o) => {
        const blades = fractalNoise(noise, x / (s * 0.012), y / (s * 0.05), 2);
        const patches = noise(x / (s * 0.15) + 50, y / (s * 0.15) + 50);
        const f = 0.62 + 0.55 * blades + 0.25 * (patches - 0.5);
        put(rgb, o, base[0] * f, base[1] * f, base[2] * f);
      };
    }
    case 'water': {
      const base = jittered(rng, [30, 85, 165], 0.07);
      const crest = [150, 195, 235] as const;
      const wavelength = s * rng.uniform(0.03, 0.045);
      return (x, y, rgb, o) => {
        const phase = y / wavelength + 1.6 * noise(x / (s * 0.18), y / (s * 0.09));
        const w = Math.sin(2 * Math.PI * phase);
        const depth = 0.88 + 0.2 * noise(x / (s * 0.3) + 90, y / (s * 0.3));
        let r = base[0] * depth;
        let g = base[1] * depth;
        let b = base[2] * depth;
        if (w > 0.72) {
          const c = ((w - 0.72) / 0.28) * 0.7;
          r += (crest[0] - r) * c;
          g += (crest[1] - g) * c;
          b += (crest[2] - b) * c;
        }
        put(rgb, o, r, g, b);
      };
    }
    case 'sand': {
      const base = jittered(rng, [218, 192, 135], 0.04);
      const period = s * rng.uniform(0.04, 0.06);
      const slant = rng.uniform(-0.8, 0.8);
      return (x, y, rgb, o) => {
        const ripple = Math.sin(2 * Math.PI * ((x * slant + y) / period + 2 * noise(x / (s * 0.2), y / (s * 0.2))));
        const speckle = (hash2(x, y, seed) - 0.5) * 28;
        const f = 1 + 0.055 * ripple;
        put(rgb, o, base[0] * f + speckle, base[1] * f + speckle, base[2] * f + speckle);
      };
    }
    case 'wall': {
      const brick = jittered(rng, [158, 66, 46], 0.07);
      const mortar = jittered(rng, [192, 186, 176], 0.03);
      const brickH = Math.max(3, Math.round(s / rng.uniform(14, 19)));
      const brickW = 2 * brickH;
      const joint = Math.max(1, Math.round(brickH / 7));
      const ox = rng.int(0, brickW - 1);
      const oy = rng.int(0, brickH - 1);
      return (x, y, rgb, o) => {
        const yy = y + oy;
        const row = Math.floor(yy / brickH);
        const xx = x + ox + (row & 1) * (brickW >> 1);
        const col = Math.floor(xx / brickW);
        if (yy % brickH < joint || xx % brickW < joint) {
          put(rgb, o, mortar[0], mortar[1], mortar[2]);
          return;
        }
        const f = 0.78 + 0.36 * hash2(col, row, seed) + 0.08 * (hash2(x, y, seed + 1) - 0.5);
        put(rgb, o, brick[0] * f, brick[1] * f, brick[2] * f);
      };
    }
    case 'gravel': {
      const base = jittered(rng, [98, 94, 90], 0.05);
      const cell = s * rng.uniform(0.025, 0.035);
      return (x, y, rgb, o) => {
        const n = noise(x / cell, y / cell) * 4;
        const level = Math.floor(n);
        const edge = n - level < 0.14 ? 0.72 : 1;
        const f = (0.8 + 0.16 * level) * edge;
        const speckle = (hash2(x, y, seed) - 0.5) * 14;
        put(rgb, o, base[0] * f + speckle, base[1] * f + speckle, (base[2] + 6 * level) * f + speckle);
      };
    }
  }
}
