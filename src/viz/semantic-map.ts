import type { RgbImage } from '../io/image-types.js';
import type { SemanticResult } from '../inference/results.js';
import { blit, createRgbImage } from './image.js';
import { FONT, drawText, measureText } from './font.js';
import { fillRect, strokeRect } from './rect.js';
import { defaultLabelScale, promptColor, shortLabel } from './overlay-prediction.js';
import type { Rgb } from './palette.js';

/** Pixels per prompt (index -1, the background, is counted apart). */
export interface SemanticArea {
  promptIndex: number;
  prompt: string;
  pixels: number;
  /** Share of the image, 0-1. */
  fraction: number;
}

/** How much of the image each prompt won, largest first; prompts with no pixel are left out. */
export function semanticAreas(semantic: SemanticResult): SemanticArea[] {
  const counts = new Map<number, number>();
  for (let i = 0; i < semantic.labels.length; i++) {
    const v = semantic.labels[i]!;
    if (v >= 0) counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  const total = semantic.width * semantic.height;
  return [...counts.entries()]
    .map(([promptIndex, pixels]) => ({
      promptIndex,
      prompt: semantic.prompts[promptIndex] ?? `#${promptIndex}`,
      pixels,
      fraction: pixels / total,
    }))
    .sort((a, b) => b.pixels - a.pixels || a.promptIndex - b.promptIndex);
}

/** One colour per pixel: the winning prompt's colour, `background` where no prompt won. */
export function semanticColorMap(semantic: SemanticResult, background: Rgb = [0, 0, 0]): RgbImage {
  const { width, height, labels } = semantic;
  if (labels.length !== width * height)
    throw new Error(`semanticColorMap: ${labels.length} labels for a ${width}x${height} map`);
  const out = createRgbImage(width, height, background);
  const cache = new Map<number, Rgb>();
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i]!;
    if (v < 0) continue;
    let c = cache.get(v);
    if (c === undefined) {
      c = promptColor(v);
      cache.set(v, c);
    }
    out.data[3 * i] = c[0];
    out.data[3 * i + 1] = c[1];
    out.data[3 * i + 2] = c[2];
  }
  return out;
}

export interface DrawSemanticOptions {
  /** Opacity of the colours over the image (default 0.6; 1 gives the bare colour map). */
  alpha?: number;
  /** Colour of background pixels (no prompt won); they are mixed with the image like the rest. */
  background?: Rgb;
  /** A panel to the right naming each colour with its share of the image (default on). */
  legend?: boolean;
  /** Font magnification of the legend (default grows with the image, as for instance labels). */
  labelScale?: number;
  maxLabelChars?: number;
}

/**
 * The semantic segmentation as a picture: each pixel tinted with its prompt's colour over the
 * image, with a legend panel to the right (prompt, colour, share of the image, largest first).
 */
export function drawSemantic(image: RgbImage, semantic: SemanticResult, options: DrawSemanticOptions = {}): RgbImage {
  if (semantic.width !== image.width || semantic.height !== image.height) {
    throw new Error(
      `drawSemantic: the map is ${semantic.width}x${semantic.height}, the image ${image.width}x${image.height}`,
    );
  }
  const alpha = Math.min(1, Math.max(0, options.alpha ?? 0.6));
  const colors = semanticColorMap(semantic, options.background ?? [0, 0, 0]);
  const blended = createRgbImage(image.width, image.height);
  for (let i = 0; i < blended.data.length; i++)
    blended.data[i] = Math.round(image.data[i]! + (colors.data[i]! - image.data[i]!) * alpha);
  if (!(options.legend ?? true)) return blended;

  const scale = options.labelScale ?? defaultLabelScale(Math.max(image.width, image.height));
  const maxChars = options.maxLabelChars ?? 24;
  const rows = semanticAreas(semantic).map((a) => ({
    color: promptColor(a.promptIndex),
    text: `${shortLabel(a.prompt, maxChars)} ${(a.fraction * 100).toFixed(1)}%`,
  }));
  const unlabeled = semantic.labels.reduce((n, v) => n + (v < 0 ? 1 : 0), 0);
  if (unlabeled > 0)
    rows.push({
      color: options.background ?? [0, 0, 0],
      text: `background ${((unlabeled / semantic.labels.length) * 100).toFixed(1)}%`,
    });
  const pad = 6 * scale;
  const swatch = FONT.glyphHeight * scale;
  const rowHeight = FONT.cellHeight * scale + 4 * scale;
  const title = 'semantic map';
  const textWidth = Math.max(
    measureText(title, scale).width,
    ...rows.map((r) => swatch + 4 * scale + measureText(r.text, scale).width),
  );
  const panelWidth = textWidth + 2 * pad;
  const panelHeight = pad * 2 + rowHeight * (rows.length + 1);
  const out = createRgbImage(image.width + panelWidth, Math.max(image.height, panelHeight), [24, 24, 28]);
  blit(out, blended, 0, 0);
  const x0 = image.width + pad;
  drawText(out, title, x0, pad, { color: [200, 200, 210], scale });
  rows.forEach((row, k) => {
    const y = pad + rowHeight * (k + 1);
    fillRect(out, x0, y, swatch, swatch, row.color);
    strokeRect(out, x0, y, swatch, swatch, [120, 120, 130]);
    drawText(out, row.text, x0 + swatch + 4 * scale, y, { color: [235, 235, 240], scale });
  });
  return out;
}
