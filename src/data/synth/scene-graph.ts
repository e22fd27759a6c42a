import { encodeRle, rleToBbox } from '../../structures/rle.js';
import type { StuffKind } from './categories.js';
import { connectedPieces } from './pieces.js';
import { MIN_REFERABLE_PIECE_FRACTION, type RefStuffPiece, type RefThing, type SceneGraph } from './referring.js';

/** A scene graph plus the mask of each referable stuff piece (graph.pieces[k] <-> pieceMasks[k]). */
export interface SceneGraphWithMasks {
  graph: SceneGraph;
  pieceMasks: Uint8Array[];
}

/**
 * Builds the graph the referring semantics works on from what annotations hold: things with their
 * attributes and boxes, and each stuff class's visible mask, which is cut into connected pieces;
 * pieces under MIN_REFERABLE_PIECE_FRACTION of the image are left out. The generator and the
 * checker both call this, so they cannot disagree about which pieces exist.
 */
export function buildSceneGraph(
  width: number,
  height: number,
  things: readonly RefThing[],
  stuff: readonly { kind: StuffKind; mask: Uint8Array }[],
): SceneGraphWithMasks {
  const minArea = MIN_REFERABLE_PIECE_FRACTION * width * height;
  const pieces: RefStuffPiece[] = [];
  const pieceMasks: Uint8Array[] = [];
  for (const s of stuff) {
    for (const p of connectedPieces(s.mask, height, width)) {
      if (p.area < minArea) continue;
      pieces.push({
        index: pieces.length,
        stuff: s.kind,
        bbox: rleToBbox(encodeRle(p.mask, height, width)),
        area: p.area,
      });
      pieceMasks.push(p.mask);
    }
  }
  return { graph: { width, height, things, pieces }, pieceMasks };
}
