/**
 * Axis-aligned boxes as plain 4-number tuples. The format is carried by the function name:
 * xyxy = [x1, y1, x2, y2], xywh = [x, y, width, height] (COCO), cxcywh = [cx, cy, width, height] (DETR).
 * Batch forms take and return flat arrays of N*4 numbers.
 */
export type Box = [number, number, number, number];
/** A box as read: any 4-tuple, mutable or not. */
export type BoxLike = readonly [number, number, number, number];
export type BoxFormat = 'xyxy' | 'xywh' | 'cxcywh';

export function xyxyToXywh([x1, y1, x2, y2]: BoxLike): Box {
  return [x1, y1, x2 - x1, y2 - y1];
}

export function xywhToXyxy([x, y, w, h]: BoxLike): Box {
  return [x, y, x + w, y + h];
}

export function cxcywhToXyxy([cx, cy, w, h]: BoxLike): Box {
  return [cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h];
}

export function xyxyToCxcywh([x1, y1, x2, y2]: BoxLike): Box {
  return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1];
}

export function xywhToCxcywh([x, y, w, h]: BoxLike): Box {
  return [x + w / 2, y + h / 2, w, h];
}

export function cxcywhToXywh([cx, cy, w, h]: BoxLike): Box {
  return [cx - w / 2, cy - h / 2, w, h];
}

/** Any format to any format (via xyxy). */
export function convertBox(box: BoxLike, from: BoxFormat, to: BoxFormat): Box {
  if (from === to) return [box[0], box[1], box[2], box[3]];
  const xyxy = from === 'xyxy' ? (box as Box) : from === 'xywh' ? xywhToXyxy(box) : cxcywhToXyxy(box);
  return to === 'xyxy' ? [xyxy[0], xyxy[1], xyxy[2], xyxy[3]] : to === 'xywh' ? xyxyToXywh(xyxy) : xyxyToCxcywh(xyxy);
}

/** Box `i` of a flat N*4 array, converted, written at out[offset..offset + 3] (default 4 i). */
export function convertBoxAt(
  flat: ArrayLike<number>,
  i: number,
  from: BoxFormat,
  to: BoxFormat,
  out: Float32Array | Float64Array,
  offset = 4 * i,
): void {
  const b = convertBox([flat[4 * i]!, flat[4 * i + 1]!, flat[4 * i + 2]!, flat[4 * i + 3]!], from, to);
  out[offset] = b[0];
  out[offset + 1] = b[1];
  out[offset + 2] = b[2];
  out[offset + 3] = b[3];
}

/** Batch form of convertBox over a flat N*4 array; returns a new array of the same kind. */
export function convertBoxes<T extends Float32Array | Float64Array>(flat: T, from: BoxFormat, to: BoxFormat): T {
  if (flat.length % 4 !== 0) throw new Error(`convertBoxes: length ${flat.length} is not a multiple of 4`);
  const out = new (flat.constructor as new (n: number) => T)(flat.length);
  for (let i = 0; i < flat.length / 4; i++) convertBoxAt(flat, i, from, to, out);
  return out;
}

/** Absolute pixels to [0, 1] units of the image; works for every format (each coordinate is an x or a y extent). */
export function normalizeBox([a, b, c, d]: BoxLike, width: number, height: number): Box {
  return [a / width, b / height, c / width, d / height];
}

/** [0, 1] image units to absolute pixels; the inverse of normalizeBox. */
export function denormalizeBox([a, b, c, d]: BoxLike, width: number, height: number): Box {
  return [a * width, b * height, c * width, d * height];
}

/** Area of an xyxy box; inverted boxes have area 0. */
export function boxArea([x1, y1, x2, y2]: BoxLike): number {
  return Math.max(0, x2 - x1) * Math.max(0, y2 - y1);
}

/** Clamps an xyxy box to the image [0, width] x [0, height]. */
export function clipBox([x1, y1, x2, y2]: BoxLike, width: number, height: number): Box {
  const cx = (v: number) => Math.min(Math.max(v, 0), width);
  const cy = (v: number) => Math.min(Math.max(v, 0), height);
  return [cx(x1), cy(y1), cx(x2), cy(y2)];
}

/** Reads box i of either a Box[] or a flat N*4 array. */
export function boxAt(boxes: readonly BoxLike[] | ArrayLike<number>, i: number): Box {
  const count = boxCount(boxes);
  if (!Number.isInteger(i) || i < 0 || i >= count) throw new RangeError(`boxAt: no box ${i} among ${count}`);
  if (isBoxList(boxes)) {
    const b = boxes[i]!;
    return [b[0], b[1], b[2], b[3]];
  }
  const f = boxes as ArrayLike<number>;
  return [f[4 * i]!, f[4 * i + 1]!, f[4 * i + 2]!, f[4 * i + 3]!];
}

/** Number of boxes in either a Box[] or a flat N*4 array. */
export function boxCount(boxes: readonly BoxLike[] | ArrayLike<number>): number {
  if (isBoxList(boxes)) return boxes.length;
  if (boxes.length % 4 !== 0) throw new Error(`boxes: flat length ${boxes.length} is not a multiple of 4`);
  return boxes.length / 4;
}

function isBoxList(boxes: readonly BoxLike[] | ArrayLike<number>): boxes is readonly BoxLike[] {
  return Array.isArray(boxes) && (boxes.length === 0 || Array.isArray(boxes[0]));
}
