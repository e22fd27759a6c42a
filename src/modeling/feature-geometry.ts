/**
 * Shapes, padding and anchors of the flattened multi-level token sequence, all on the host: they
 * depend only on the feature sizes and each image's valid (unpadded) region. The tensors the
 * forward makes from the valid region are data inputs (src/engine/graph-inputs.ts) named in
 * GEOMETRY_INPUTS, so that one exported graph serves every valid region: its runner computes them
 * with geometryInputValues, which calls the same functions as the forward.
 */
import { sinePositionEmbedding } from './position-encoding.js';

const f = Math.fround;

/** The data inputs the forward makes from the padding geometry, by what they are. */
export const GEOMETRY_INPUTS = {
  /** [B, H, W, 1] 1 inside each image, 0 in the padding (pixelKeepMask). */
  pixelKeep: 'pixel_keep',
  /** [B, S, 1] tokenKeepMask. */
  tokenKeep: 'token_keep',
  /** [B*S, 1, L, P*2] the encoder's sampling base (pointSamplingBase of encoderReferencePoints). */
  encoderReference: 'encoder_reference',
  /** [B, S, E] each level's sine embedding of its padding mask (levelPositionEmbeddings). */
  positionEmbedding: 'position_embedding',
  /** [B, S, 1] 1 where a token's proposal anchor is usable (proposalAnchors' valid). */
  anchorKeep: 'anchor_keep',
  /** [B, S, 4] the anchors before the sigmoid (proposalAnchors' unact). */
  anchorUnact: 'anchor_unact',
  /** [B, 1, L, 4] each level's valid ratios as (w, h, w, h) (validRatioScales). */
  validRatios: 'valid_ratios',
} as const;

export interface LevelGeometry {
  batch: number;
  /** [h, w] per level. */
  shapes: [number, number][];
  /** Index of each level's first token in the flattened sequence. */
  levelStart: number[];
  /** Tokens over all levels. */
  total: number;
  /** Per image, per level: [validH, validW] in tokens. */
  valid: [number, number][][];
  /** [B, L, 2] valid ratio (w, h) per image and level, float32 as the reference computes it. */
  validRatios: Float32Array;
}

/** Rows (or columns) of a size-`out` nearest-resized mask that fall in the first `valid` of `size` pixels. */
function nearestValidCount(size: number, out: number, valid: number): number {
  const scale = f(size / out);
  let count = 0;
  for (let i = 0; i < out; i++) if (Math.min(Math.floor(f(i * scale)), size - 1) < valid) count++;
  return count;
}

/**
 * imageValid: [validH, validW] per image in input pixels; inputSize: the padded [H, W] of the batch;
 * shapes: [h, w] of each feature level.
 */
export function levelGeometry(
  shapes: [number, number][],
  imageValid: [number, number][],
  inputSize: [number, number],
): LevelGeometry {
  const levelStart: number[] = [];
  let total = 0;
  for (const [h, w] of shapes) {
    levelStart.push(total);
    total += h * w;
  }
  const batch = imageValid.length;
  const valid = imageValid.map(([vh, vw]) =>
    shapes.map(
      ([h, w]) => [nearestValidCount(inputSize[0], h, vh), nearestValidCount(inputSize[1], w, vw)] as [number, number],
    ),
  );
  const validRatios = new Float32Array(batch * shapes.length * 2);
  valid.forEach((levels, b) =>
    levels.forEach(([vh, vw], l) => {
      const [h, w] = shapes[l]!;
      validRatios[(b * shapes.length + l) * 2] = f(vw / w);
      validRatios[(b * shapes.length + l) * 2 + 1] = f(vh / h);
    }),
  );
  return { batch, shapes, levelStart, total, valid, validRatios };
}

/** [B, S] 1 for tokens inside the image, 0 for padding. */
export function tokenKeepMask(g: LevelGeometry): Float32Array {
  const out = new Float32Array(g.batch * g.total);
  for (let b = 0; b < g.batch; b++) {
    g.shapes.forEach(([, w], l) => {
      const [vh, vw] = g.valid[b]![l]!;
      for (let y = 0; y < vh; y++)
        out.fill(1, b * g.total + g.levelStart[l]! + y * w, b * g.total + g.levelStart[l]! + y * w + vw);
    });
  }
  return out;
}

/**
 * Encoder reference points [B, S, L, 2]: each token's pixel centre normalised by its level's
 * valid size, then scaled by every level's valid ratio (get_reference_points).
 */
export function encoderReferencePoints(g: LevelGeometry): Float32Array {
  const levels = g.shapes.length;
  const out = new Float32Array(g.batch * g.total * levels * 2);
  for (let b = 0; b < g.batch; b++) {
    const ratio = (l: number, c: number) => g.validRatios[(b * levels + l) * 2 + c]!;
    g.shapes.forEach(([h, w], l) => {
      const ry = f(ratio(l, 1) * h);
      const rx = f(ratio(l, 0) * w);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const refX = f(f(x + 0.5) / rx);
          const refY = f(f(y + 0.5) / ry);
          const o = (b * g.total + g.levelStart[l]! + y * w + x) * levels * 2;
          for (let k = 0; k < levels; k++) {
            out[o + k * 2] = f(refX * ratio(k, 0));
            out[o + k * 2 + 1] = f(refY * ratio(k, 1));
          }
        }
      }
    });
  }
  return out;
}

export interface ProposalAnchors {
  /** [B, S, 4] inverse-sigmoid anchors (cx, cy, w, h); +Infinity where the anchor is unusable. */
  unact: Float32Array;
  /** [B, S] 1 where the anchor is inside the image and away from its border. */
  valid: Uint8Array;
  /** [B, S, 4] anchors in [0, 1] (cx, cy, w, h), before the inverse sigmoid. */
  boxes: Float32Array;
  /** [S] level of each token. */
  levelIds: Int32Array;
}

/**
 * gen_encoder_output_proposals: a box of side 0.05 * 2^level at every token centre (normalised
 * by the valid size), usable when all four numbers are in (0.01, 0.99) and the token is not padding.
 */
export function proposalAnchors(g: LevelGeometry): ProposalAnchors {
  const unact = new Float32Array(g.batch * g.total * 4);
  const boxes = new Float32Array(g.batch * g.total * 4);
  const valid = new Uint8Array(g.batch * g.total);
  const levelIds = new Int32Array(g.total);
  g.shapes.forEach(([h, w], l) => levelIds.fill(l, g.levelStart[l]!, g.levelStart[l]! + h * w));
  for (let b = 0; b < g.batch; b++) {
    g.shapes.forEach(([h, w], l) => {
      const [vh, vw] = g.valid[b]![l]!;
      const size = f(0.05 * 2 ** l);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const i = b * g.total + g.levelStart[l]! + y * w + x;
          const box = [f(f(x + 0.5) / vw), f(f(y + 0.5) / vh), size, size];
          const inside = y < vh && x < vw && box.every((v) => v > 0.01 && v < 0.99);
          valid[i] = inside ? 1 : 0;
          for (let c = 0; c < 4; c++) {
            boxes[i * 4 + c] = box[c]!;
            unact[i * 4 + c] = inside ? f(Math.log(f(box[c]! / f(1 - box[c]!)))) : Infinity;
          }
        }
      }
    });
  }
  return { unact, valid, boxes, levelIds };
}

/** [B, S, 2 * numPosFeats]: the sine embedding of every level's padding mask, flattened like the tokens. */
export function flattenedPositionEmbeddings(
  g: LevelGeometry,
  numPosFeats: number,
  embed: (h: number, w: number, vh: number, vw: number) => Float32Array,
): Float32Array {
  const c = 2 * numPosFeats;
  const out = new Float32Array(g.batch * g.total * c);
  for (let b = 0; b < g.batch; b++) {
    g.shapes.forEach(([h, w], l) => {
      const [vh, vw] = g.valid[b]![l]!;
      out.set(embed(h, w, vh, vw), (b * g.total + g.levelStart[l]!) * c);
    });
  }
  return out;
}

/** [B, H, W, 1] 1 inside each image's valid [height, width] at the top-left of the H x W input, 0 in the padding. */
export function pixelKeepMask(sizes: readonly [number, number][], inputSize: [number, number]): Float32Array {
  const [h, w] = inputSize;
  const keep = new Float32Array(sizes.length * h * w);
  sizes.forEach(([vh, vw], i) => {
    for (let y = 0; y < vh; y++) keep.fill(1, (i * h + y) * w, (i * h + y) * w + vw);
  });
  return keep;
}

/**
 * The base of a point sampling frame, [rows, 1, levels, points*2]: each row's reference (x, y) per
 * level (reference [rows, levels, 2]) repeated per point.
 */
export function pointSamplingBase(
  reference: Float32Array,
  rows: number,
  levels: number,
  numPoints: number,
): Float32Array {
  const width = levels * numPoints * 2;
  const base = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    for (let l = 0; l < levels; l++) {
      const x = reference[(r * levels + l) * 2]!;
      const y = reference[(r * levels + l) * 2 + 1]!;
      for (let p = 0; p < numPoints; p++) {
        base[r * width + (l * numPoints + p) * 2] = x;
        base[r * width + (l * numPoints + p) * 2 + 1] = y;
      }
    }
  }
  return base;
}

/** [B, S, embedDim]: detrex's sine embedding (embedDim / 2 features per axis) of every level's padding mask. */
export function levelPositionEmbeddings(g: LevelGeometry, embedDim: number): Float32Array {
  const n = embedDim / 2;
  return flattenedPositionEmbeddings(g, n, (h, w, vh, vw) => sinePositionEmbedding(h, w, vh, vw, { numPosFeats: n }));
}

/** [B, 1, L, 4]: each level's valid ratios (w, h) as (w, h, w, h), which scale a reference box per level. */
export function validRatioScales(validRatios: Float32Array, batch: number, levels: number): Float32Array {
  const out = new Float32Array(batch * levels * 4);
  for (let i = 0; i < batch * levels; i++) {
    out.set([validRatios[i * 2]!, validRatios[i * 2 + 1]!], i * 4);
    out.set([validRatios[i * 2]!, validRatios[i * 2 + 1]!], i * 4 + 2);
  }
  return out;
}

/** A host array with its shape. */
export interface HostArray {
  values: Float32Array;
  shape: number[];
}

/**
 * Every geometry data input (GEOMETRY_INPUTS) of a forward on `sizes` (each image's valid
 * [height, width]) inside an input of `inputSize`, whose feature levels have `shapes`: what the
 * forward makes, computed by the same functions, for a runner that feeds an exported graph.
 */
export function geometryInputValues(
  shapes: [number, number][],
  sizes: [number, number][],
  inputSize: [number, number],
  settings: { numPoints: number; embedDim: number },
): Record<string, HostArray> {
  const g = levelGeometry(shapes, sizes, inputSize);
  const { batch: b, total: s } = g;
  const levels = shapes.length;
  const anchors = proposalAnchors(g);
  return {
    [GEOMETRY_INPUTS.pixelKeep]: { values: pixelKeepMask(sizes, inputSize), shape: [b, ...inputSize, 1] },
    [GEOMETRY_INPUTS.tokenKeep]: { values: tokenKeepMask(g), shape: [b, s, 1] },
    [GEOMETRY_INPUTS.encoderReference]: {
      values: pointSamplingBase(encoderReferencePoints(g), b * s, levels, settings.numPoints),
      shape: [b * s, 1, levels, settings.numPoints * 2],
    },
    [GEOMETRY_INPUTS.positionEmbedding]: {
      values: levelPositionEmbeddings(g, settings.embedDim),
      shape: [b, s, settings.embedDim],
    },
    [GEOMETRY_INPUTS.anchorKeep]: { values: Float32Array.from(anchors.valid), shape: [b, s, 1] },
    [GEOMETRY_INPUTS.anchorUnact]: { values: anchors.unact, shape: [b, s, 4] },
    [GEOMETRY_INPUTS.validRatios]: {
      values: validRatioScales(g.validRatios, b, levels),
      shape: [b, 1, levels, 4],
    },
  };
}
