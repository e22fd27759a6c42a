import type { RgbImage } from '../io/image-types.js';
import { fillRect } from './rect.js';
import type { Rgb } from './palette.js';

/**
 * A built-in 5x7 bitmap font for printable ASCII (32-126) with one descender row (g, j, p, q, y),
 * drawn in a 6x9 cell (one column and one row of spacing), so labels need no system fonts and
 * look the same in Node and the browser. Each glyph is eight rows, top to bottom; bit 4 of a row
 * is the leftmost pixel.
 */
const GLYPH_ROWS = [
  '00 00 00 00 00 00 00 00', // ' '
  '04 04 04 04 04 00 04 00', // !
  '0A 0A 0A 00 00 00 00 00', // "
  '0A 0A 1F 0A 1F 0A 0A 00', // #
  '04 0F 14 0E 05 1E 04 00', // $
  '18 19 02 04 08 13 03 00', // %
  '0C 12 14 08 15 12 0D 00', // &
  '0C 04 08 00 00 00 00 00', // '
  '02 04 08 08 08 04 02 00', // (
  '08 04 02 02 02 04 08 00', // )
  '00 04 15 0E 15 04 00 00', // *
  '00 04 04 1F 04 04 00 00', // +
  '00 00 00 00 0C 04 08 00', // ,
  '00 00 00 1F 00 00 00 00', // -
  '00 00 00 00 00 0C 0C 00', // .
  '00 01 02 04 08 10 00 00', // /
  '0E 11 13 15 19 11 0E 00', // 0
  '04 0C 04 04 04 04 0E 00', // 1
  '0E 11 01 02 04 08 1F 00', // 2
  '1F 02 04 02 01 11 0E 00', // 3
  '02 06 0A 12 1F 02 02 00', // 4
  '1F 10 1E 01 01 11 0E 00', // 5
  '06 08 10 1E 11 11 0E 00', // 6
  '1F 01 02 04 08 08 08 00', // 7
  '0E 11 11 0E 11 11 0E 00', // 8
  '0E 11 11 0F 01 02 0C 00', // 9
  '00 0C 0C 00 0C 0C 00 00', // :
  '00 0C 0C 00 0C 04 08 00', // ;
  '02 04 08 10 08 04 02 00', // <
  '00 00 1F 00 1F 00 00 00', // =
  '08 04 02 01 02 04 08 00', // >
  '0E 11 01 02 04 00 04 00', // ?
  '0E 11 01 0D 15 15 0E 00', // @
  '0E 11 11 11 1F 11 11 00', // A
  '1E 11 11 1E 11 11 1E 00', // B
  '0E 11 10 10 10 11 0E 00', // C
  '1C 12 11 11 11 12 1C 00', // D
  '1F 10 10 1E 10 10 1F 00', // E
  '1F 10 10 1E 10 10 10 00', // F
  '0E 11 10 17 11 11 0F 00', // G
  '11 11 11 1F 11 11 11 00', // H
  '0E 04 04 04 04 04 0E 00', // I
  '07 02 02 02 02 12 0C 00', // J
  '11 12 14 18 14 12 11 00', // K
  '10 10 10 10 10 10 1F 00', // L
  '11 1B 15 15 11 11 11 00', // M
  '11 11 19 15 13 11 11 00', // N
  '0E 11 11 11 11 11 0E 00', // O
  '1E 11 11 1E 10 10 10 00', // P
  '0E 11 11 11 15 12 0D 00', // Q
  '1E 11 11 1E 14 12 11 00', // R
  '0F 10 10 0E 01 01 1E 00', // S
  '1F 04 04 04 04 04 04 00', // T
  '11 11 11 11 11 11 0E 00', // U
  '11 11 11 11 11 0A 04 00', // V
  '11 11 11 15 15 15 0A 00', // W
  '11 11 0A 04 0A 11 11 00', // X
  '11 11 11 0A 04 04 04 00', // Y
  '1F 01 02 04 08 10 1F 00', // Z
  '0E 08 08 08 08 08 0E 00', // [
  '00 10 08 04 02 01 00 00', // backslash
  '0E 02 02 02 02 02 0E 00', // ]
  '04 0A 11 00 00 00 00 00', // ^
  '00 00 00 00 00 00 1F 00', // _
  '08 04 02 00 00 00 00 00', // `
  '00 00 0E 01 0F 11 0F 00', // a
  '10 10 16 19 11 11 1E 00', // b
  '00 00 0E 10 10 11 0E 00', // c
  '01 01 0D 13 11 11 0F 00', // d
  '00 00 0E 11 1F 10 0E 00', // e
  '06 09 08 1C 08 08 08 00', // f
  '00 00 0F 11 11 0F 01 0E', // g
  '10 10 16 19 11 11 11 00', // h
  '04 00 0C 04 04 04 0E 00', // i
  '02 00 06 02 02 02 12 0C', // j
  '10 10 12 14 18 14 12 00', // k
  '0C 04 04 04 04 04 0E 00', // l
  '00 00 1A 15 15 11 11 00', // m
  '00 00 16 19 11 11 11 00', // n
  '00 00 0E 11 11 11 0E 00', // o
  '00 00 1E 11 11 1E 10 10', // p
  '00 00 0F 11 11 0F 01 01', // q
  '00 00 16 19 10 10 10 00', // r
  '00 00 0E 10 0E 01 1E 00', // s
  '08 08 1C 08 08 09 06 00', // t
  '00 00 11 11 11 13 0D 00', // u
  '00 00 11 11 11 0A 04 00', // v
  '00 00 11 11 15 15 0A 00', // w
  '00 00 11 0A 04 0A 11 00', // x
  '00 00 11 11 11 0F 01 0E', // y
  '00 00 1F 02 04 08 1F 00', // z
  '02 04 04 08 04 04 02 00', // {
  '04 04 04 04 04 04 04 00', // |
  '08 04 04 02 04 04 08 00', // }
  '00 00 08 15 02 00 00 00', // ~
];

const FIRST_CODE = 32;
const GLYPHS: number[][] = GLYPH_ROWS.map((row) => row.split(' ').map((h) => parseInt(h, 16)));

/** Glyph width and height in font pixels, and the cell advance (with spacing). */
export const FONT = { glyphWidth: 5, glyphHeight: 8, cellWidth: 6, cellHeight: 9 } as const;

function glyphOf(ch: string): number[] {
  const code = ch.charCodeAt(0);
  return GLYPHS[code - FIRST_CODE] ?? GLYPHS['?'.charCodeAt(0) - FIRST_CODE]!;
}

export interface TextStyle {
  color?: Rgb;
  /** Integer magnification: each font pixel becomes scale x scale image pixels. */
  scale?: number;
  /** Fills the text's box (with one font pixel of margin) before drawing, for legibility on busy images. */
  background?: Rgb;
  backgroundAlpha?: number;
}

/** Width and height in image pixels of `text` (one line; newlines start new lines) at `scale`. */
export function measureText(text: string, scale = 1): { width: number; height: number } {
  const lines = text.split('\n');
  const longest = Math.max(...lines.map((l) => l.length));
  return {
    width: longest === 0 ? 0 : (longest * FONT.cellWidth - 1) * scale,
    height: (lines.length * FONT.cellHeight - 1) * scale,
  };
}

/**
 * Draws `text` with its top-left corner at (x, y). Characters outside printable ASCII show as '?'.
 * Returns the drawn box (including the background margin when one is drawn).
 */
export function drawText(
  image: RgbImage,
  text: string,
  x: number,
  y: number,
  style: TextStyle = {},
): { x: number; y: number; width: number; height: number } {
  const scale = Math.max(1, Math.floor(style.scale ?? 1));
  const color = style.color ?? [255, 255, 255];
  const size = measureText(text, scale);
  let box = { x, y, width: size.width, height: size.height };
  if (style.background !== undefined) {
    box = { x: x - scale, y: y - scale, width: size.width + 2 * scale, height: size.height + 2 * scale };
    fillRect(image, box.x, box.y, box.width, box.height, style.background, style.backgroundAlpha ?? 1);
  }
  const lines = text.split('\n');
  for (let l = 0; l < lines.length; l++) {
    const line = lines[l]!;
    for (let c = 0; c < line.length; c++) {
      const glyph = glyphOf(line[c]!);
      const gx = x + c * FONT.cellWidth * scale;
      const gy = y + l * FONT.cellHeight * scale;
      for (let row = 0; row < FONT.glyphHeight; row++) {
        const bits = glyph[row]!;
        for (let col = 0; col < FONT.glyphWidth; col++) {
          if (bits & (1 << (FONT.glyphWidth - 1 - col))) {
            fillRect(image, gx + col * scale, gy + row * scale, scale, scale, color);
          }
        }
      }
    }
  }
  return box;
}

/** Breaks `text` at spaces into lines of at most `maxChars` characters (longer words are cut). */
export function wrapText(text: string, maxChars: number): string[] {
  const lines: string[] = [];
  let current = '';
  for (const word of text.split(/\s+/).filter((w) => w.length > 0)) {
    let rest = word;
    while (rest.length > maxChars) {
      if (current) lines.push(current);
      current = '';
      lines.push(rest.slice(0, maxChars));
      rest = rest.slice(maxChars);
    }
    if (!current) current = rest;
    else if (current.length + 1 + rest.length <= maxChars) current += ` ${rest}`;
    else {
      lines.push(current);
      current = rest;
    }
  }
  if (current) lines.push(current);
  return lines;
}
