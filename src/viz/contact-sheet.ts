import type { RgbImage } from '../io/image-types.js';
import { blit, createRgbImage } from './image.js';
import { FONT, drawText, wrapText } from './font.js';
import type { Rgb } from './palette.js';

export interface ContactSheetOptions {
  /** Tiles per row (default: the smallest count giving a roughly square sheet). */
  columns?: number;
  /** Pixels between tiles and around the sheet. */
  padding?: number;
  background?: Rgb;
  /** Text under each tile, one entry per tile; long lines are wrapped to the tile width. */
  captions?: readonly (string | readonly string[])[];
  captionColor?: Rgb;
  captionScale?: number;
}

/** Lays tiles out in a grid (cells sized to the largest tile), with optional captions beneath. */
export function contactSheet(tiles: readonly RgbImage[], options: ContactSheetOptions = {}): RgbImage {
  if (tiles.length === 0) throw new Error('contactSheet: no tiles');
  const columns = Math.max(1, Math.min(tiles.length, options.columns ?? Math.ceil(Math.sqrt(tiles.length))));
  const rows = Math.ceil(tiles.length / columns);
  const pad = options.padding ?? 4;
  const scale = Math.max(1, Math.floor(options.captionScale ?? 1));
  const cellW = Math.max(...tiles.map((t) => t.width));
  const tileH = Math.max(...tiles.map((t) => t.height));
  const maxChars = Math.max(1, Math.floor((cellW + scale) / (FONT.cellWidth * scale)));
  const captionLines = tiles.map((_, i) => {
    const c = options.captions?.[i];
    if (c === undefined) return [];
    const lines = typeof c === 'string' ? [c] : c;
    return lines.flatMap((l) => wrapText(l, maxChars));
  });
  const captionH = Math.max(0, ...captionLines.map((l) => (l.length > 0 ? l.length * FONT.cellHeight * scale + 2 : 0)));
  const cellH = tileH + captionH;
  const sheet = createRgbImage(
    columns * (cellW + pad) + pad,
    rows * (cellH + pad) + pad,
    options.background ?? [32, 32, 32],
  );
  tiles.forEach((tile, i) => {
    const x = pad + (i % columns) * (cellW + pad);
    const y = pad + Math.floor(i / columns) * (cellH + pad);
    blit(sheet, tile, x, y);
    captionLines[i]!.forEach((line, k) => {
      drawText(sheet, line, x, y + tileH + 2 + k * FONT.cellHeight * scale, {
        color: options.captionColor ?? [230, 230, 230],
        scale,
      });
    });
  });
  return sheet;
}
