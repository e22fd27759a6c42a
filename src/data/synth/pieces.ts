import { labelComponents, type Connectivity } from '../../structures/components.js';

/**
 * Stuff pieces are the connected components of a stuff class's visible mask, 8-connected like
 * the default of structures/components (which the training data mapper uses to turn stuff
 * into instances), so a piece here is an instance there.
 */
export const STUFF_PIECE_CONNECTIVITY: Connectivity = 8;

export interface MaskPiece {
  /** Full-size 0/1 mask of this piece. */
  mask: Uint8Array;
  /** Row-major indices of its pixels, ascending. */
  pixels: Int32Array;
  area: number;
}

/** The connected components of a row-major mask, in raster order of their first pixel. */
export function connectedPieces(mask: ArrayLike<number>, height: number, width: number): MaskPiece[] {
  const { labels, count, areas } = labelComponents(mask, height, width, STUFF_PIECE_CONNECTIVITY);
  const pieces: MaskPiece[] = areas.map((area) => ({
    mask: new Uint8Array(height * width),
    pixels: new Int32Array(area),
    area,
  }));
  const filled = new Int32Array(count);
  for (let i = 0; i < labels.length; i++) {
    const k = labels[i]! - 1;
    if (k < 0) continue;
    const p = pieces[k]!;
    p.mask[i] = 1;
    p.pixels[filled[k]!++] = i;
  }
  return pieces;
}
