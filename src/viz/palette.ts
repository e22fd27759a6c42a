/** An sRGB colour, each channel 0-255. */
export type Rgb = readonly [number, number, number];

/** HSV (h in [0, 1), s and v in [0, 1]) to an sRGB triple. */
export function hsvToRgb(h: number, s: number, v: number): Rgb {
  const hh = (((h % 1) + 1) % 1) * 6;
  const i = Math.floor(hh);
  const f = hh - i;
  const p = v * (1 - s);
  const q = v * (1 - s * f);
  const t = v * (1 - s * (1 - f));
  const sectors: [number, number, number][] = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ];
  const [r, g, b] = sectors[i % 6]!;
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)];
}

/**
 * The i-th colour of an endless sequence of well-separated, saturated colours: hues step by the
 * golden ratio so neighbours in the sequence differ a lot; brightness alternates in three bands.
 */
export function distinctColor(i: number): Rgb {
  const hue = (0.13 + i * 0.618033988749895) % 1;
  const v = [0.95, 0.75, 0.55][Math.floor(i / 7) % 3]!;
  const s = [0.85, 0.65][Math.floor(i / 21) % 2]!;
  return hsvToRgb(hue, s, v);
}

/** `n` distinct colours, e.g. one per category id. */
export function distinctPalette(n: number): Rgb[] {
  return Array.from({ length: n }, (_, i) => distinctColor(i));
}

/** Black or white, whichever reads better on `background`. */
export function contrastingText(background: Rgb): Rgb {
  const luma = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2];
  return luma > 140 ? [0, 0, 0] : [255, 255, 255];
}

/** Scales a colour's brightness by `factor`, clamped to 0-255. */
export function shade(color: Rgb, factor: number): Rgb {
  return [clampByte(color[0] * factor), clampByte(color[1] * factor), clampByte(color[2] * factor)];
}

export function clampByte(v: number): number {
  return v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
}
