import { boxIou } from '../structures/box-iou.js';
import { cxcywhToXyxy, type Box } from '../structures/boxes.js';
import { pasteMask } from '../structures/bitmap.js';
import type { ImagePlacement } from './preprocess.js';

export interface InstancePick {
  query: number;
  prompt: number;
  score: number;
}

export interface InstanceSelection {
  /** Minimum score (exclusive, as APE's `scores > score_thresh`). */
  threshold: number;
  /** Class-wise NMS IoU threshold. */
  nmsThreshold: number;
  topK: number;
  /** Candidates must also score at least this (inclusive; default none): a bound a caller already knows. */
  floor?: number;
  /** IoU of the boxes of queries a and b (default: boxIou of `boxes`); a caller selecting again on the same boxes memoizes it. */
  iou?: (a: number, b: number) => number;
  /** Per prompt, its best score over the queries: prompts whose best cannot pass are not scanned. */
  promptBest?: Float32Array;
}

/**
 * APE's instance inference (detectron2 fast_rcnn_inference with class-agnostic boxes): every
 * (query, prompt) pair above the threshold is a candidate; class-wise NMS, then the top K.
 * scores [Q * P] (sigmoid, row per query), boxes [Q * 4] xyxy. Candidates are visited from the
 * best score down with a heap and kept unless an already kept box of the same prompt overlaps
 * more than the NMS threshold; stopping at K kept gives exactly batched NMS followed by top-K,
 * without sorting every pair.
 */
export function selectInstances(
  scores: Float32Array,
  numQueries: number,
  numPrompts: number,
  boxes: Float32Array,
  options: InstanceSelection,
): InstancePick[] {
  if (scores.length !== numQueries * numPrompts)
    throw new Error(`selectInstances: ${scores.length} scores for ${numQueries}x${numPrompts}`);
  // Compared in float32, as a float32 score tensor against a Python float in the reference.
  const threshold = Math.fround(options.threshold);
  const floor = options.floor ?? -Infinity;
  const candidates: number[] = [];
  const best = options.promptBest;
  if (best) {
    if (best.length < numPrompts)
      throw new Error(`selectInstances: ${best.length} best scores for ${numPrompts} prompts`);
    for (let p = 0; p < numPrompts; p++) {
      const m = best[p]!;
      if (m <= threshold || m < floor) continue;
      for (let i = p; i < scores.length; i += numPrompts) {
        const s = scores[i]!;
        if (s > threshold && s >= floor && Number.isFinite(s)) candidates.push(i);
      }
    }
  } else {
    for (let i = 0; i < scores.length; i++) {
      const s = scores[i]!;
      if (s > threshold && s >= floor && Number.isFinite(s)) candidates.push(i);
    }
  }
  const heap = new MaxHeap(candidates, scores);
  const kept: InstancePick[] = [];
  const keptByPrompt = new Map<number, number[]>();
  const iou = options.iou ?? ((a: number, b: number) => boxIou(queryBox(boxes, a), queryBox(boxes, b)));
  while (kept.length < options.topK && heap.size > 0) {
    const i = heap.pop();
    const q = Math.floor(i / numPrompts);
    const p = i % numPrompts;
    const same = keptByPrompt.get(p) ?? [];
    if (same.some((k) => iou(k, q) > options.nmsThreshold)) continue;
    same.push(q);
    keptByPrompt.set(p, same);
    kept.push({ query: q, prompt: p, score: scores[i]! });
  }
  return kept;
}

/** Query q's box of [Q * 4] xyxy boxes. */
export function queryBox(boxes: Float32Array, q: number): Box {
  return [boxes[q * 4]!, boxes[q * 4 + 1]!, boxes[q * 4 + 2]!, boxes[q * 4 + 3]!];
}

/** Binary max-heap of indices ordered by score (ties: lower index first). */
class MaxHeap {
  private readonly items: Int32Array;
  size: number;

  constructor(
    indices: number[],
    private readonly scores: Float32Array,
  ) {
    this.items = Int32Array.from(indices);
    this.size = indices.length;
    for (let i = (this.size >> 1) - 1; i >= 0; i--) this.down(i);
  }

  private better(a: number, b: number): boolean {
    const sa = this.scores[a]!;
    const sb = this.scores[b]!;
    return sa > sb || (sa === sb && a < b);
  }

  pop(): number {
    const top = this.items[0]!;
    this.size--;
    if (this.size > 0) {
      this.items[0] = this.items[this.size]!;
      this.down(0);
    }
    return top;
  }

  private down(i: number): void {
    const items = this.items;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < this.size && this.better(items[l]!, items[best]!)) best = l;
      if (r < this.size && this.better(items[r]!, items[best]!)) best = r;
      if (best === i) return;
      [items[i], items[best]] = [items[best]!, items[i]!];
      i = best;
    }
  }
}

/** cxcywh in [0, 1] of the valid region -> xyxy input pixels, clipped to the valid region. */
export function boxesToPixels(boxes: Float32Array, validW: number, validH: number): Float32Array {
  const out = new Float32Array(boxes.length);
  const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  for (let i = 0; i < boxes.length; i += 4) {
    const [x1, y1, x2, y2] = cxcywhToXyxy([boxes[i]!, boxes[i + 1]!, boxes[i + 2]!, boxes[i + 3]!]);
    out[i] = clip(x1 * validW, validW);
    out[i + 1] = clip(y1 * validH, validH);
    out[i + 2] = clip(x2 * validW, validW);
    out[i + 3] = clip(y2 * validH, validH);
  }
  return out;
}

/** Bilinear (align_corners=False, edges clamped) sample of a row-major h x w map at fractional (u, v). */
export function sampleBilinear(map: ArrayLike<number>, h: number, w: number, u: number, v: number): number {
  const x = Math.min(Math.max(u, 0), w - 1);
  const y = Math.min(Math.max(v, 0), h - 1);
  const x0 = Math.floor(x);
  const y0 = Math.floor(y);
  const x1 = Math.min(x0 + 1, w - 1);
  const y1 = Math.min(y0 + 1, h - 1);
  const ax = x - x0;
  const ay = y - y0;
  const top = map[y0 * w + x0]! * (1 - ax) + map[y0 * w + x1]! * ax;
  const bottom = map[y1 * w + x0]! * (1 - ax) + map[y1 * w + x1]! * ax;
  return top * (1 - ay) + bottom * ay;
}

/** One query's mask logits: a row-major height x width map at `stride` input pixels per cell over the padded input. */
export interface MaskLogitMap {
  logits: ArrayLike<number>;
  height: number;
  width: number;
  stride: number;
}

/**
 * A query's mask at the original image size, APE-style: the mask logits are read on a
 * resolution x resolution grid over the box (input pixels), thresholded at probability 0.5, and
 * that box mask is pasted into the original image with the box scaled to original pixels
 * (detectron2 paste_masks_in_image). Pixels outside the box stay 0.
 */
export function pasteInstanceMask(
  mask: MaskLogitMap,
  boxInput: readonly [number, number, number, number],
  placement: ImagePlacement,
  resolution = 128,
): Uint8Array {
  const local = boxMaskGrid(mask, boxInput, resolution);
  return pasteMask(
    local,
    resolution,
    resolution,
    boxToOriginal(boxInput, placement),
    placement.height,
    placement.width,
    0.5,
  );
}

/**
 * The mask logits read on a resolution x resolution grid over the box (input pixels), thresholded
 * at probability 0.5: sampleBilinear at each grid point, with the taps of each grid row and
 * column worked out once (the same arithmetic, so the same values).
 */
function boxMaskGrid(
  { logits, height: maskH, width: maskW, stride }: MaskLogitMap,
  boxInput: readonly [number, number, number, number],
  resolution: number,
): Uint8Array {
  const [x1, y1, x2, y2] = boxInput;
  const local = new Uint8Array(resolution * resolution);
  const columns = gridTaps(resolution, maskW, (j) => (x1 + (j + 0.5) * ((x2 - x1) / resolution)) / stride - 0.5);
  const rows = gridTaps(resolution, maskH, (i) => (y1 + (i + 0.5) * ((y2 - y1) / resolution)) / stride - 0.5);
  for (let i = 0; i < resolution; i++) {
    const r0 = rows.lo[i]! * maskW;
    const r1 = rows.hi[i]! * maskW;
    const ay = rows.frac[i]!;
    for (let j = 0; j < resolution; j++) {
      const c0 = columns.lo[j]!;
      const c1 = columns.hi[j]!;
      const ax = columns.frac[j]!;
      const top = logits[r0 + c0]! * (1 - ax) + logits[r0 + c1]! * ax;
      const bottom = logits[r1 + c0]! * (1 - ax) + logits[r1 + c1]! * ax;
      local[i * resolution + j] = top * (1 - ay) + bottom * ay > 0 ? 1 : 0;
    }
  }
  return local;
}

/** sampleBilinear's taps along one axis of `size` cells at `count` fractional positions. */
function gridTaps(
  count: number,
  size: number,
  position: (k: number) => number,
): { lo: Int32Array; hi: Int32Array; frac: Float64Array } {
  const lo = new Int32Array(count);
  const hi = new Int32Array(count);
  const frac = new Float64Array(count);
  for (let k = 0; k < count; k++) {
    const p = Math.min(Math.max(position(k), 0), size - 1);
    lo[k] = Math.floor(p);
    hi[k] = Math.min(lo[k]! + 1, size - 1);
    frac[k] = p - lo[k]!;
  }
  return { lo, hi, frac };
}

/** An input-pixel xyxy box in original pixels, clipped to the image. */
export function boxToOriginal(
  boxInput: readonly [number, number, number, number],
  placement: ImagePlacement,
): [number, number, number, number] {
  const { width, height } = placement;
  const scaleX = width / placement.resizedWidth;
  const scaleY = height / placement.resizedHeight;
  const [x1, y1, x2, y2] = boxInput;
  return [
    Math.min(Math.max(x1 * scaleX, 0), width),
    Math.min(Math.max(y1 * scaleY, 0), height),
    Math.min(Math.max(x2 * scaleX, 0), width),
    Math.min(Math.max(y2 * scaleY, 0), height),
  ];
}

/**
 * pasteInstanceMask, encoded straight to RLE (column-major runs, pycocotools layout): the paste
 * is done on the box's window only (it never reaches further than one pixel around the box),
 * so the cost follows the box area rather than the image area.
 */
export function pasteInstanceMaskRle(
  mask: MaskLogitMap,
  boxInput: readonly [number, number, number, number],
  placement: ImagePlacement,
  resolution = 128,
): { size: [number, number]; counts: number[] } {
  const { width, height } = placement;
  const box = boxToOriginal(boxInput, placement);
  // The window pasteMask writes to: the box widened by one pixel, inside the image.
  const wx0 = Math.max(Math.floor(box[0]) - 1, 0);
  const wy0 = Math.max(Math.floor(box[1]) - 1, 0);
  const wx1 = Math.min(Math.ceil(box[2]) + 1, width);
  const wy1 = Math.min(Math.ceil(box[3]) + 1, height);
  const ww = wx1 - wx0;
  const wh = wy1 - wy0;
  if (ww <= 0 || wh <= 0) return { size: [height, width], counts: [width * height] };
  const window = pasteMask(
    boxMaskGrid(mask, boxInput, resolution),
    resolution,
    resolution,
    [box[0] - wx0, box[1] - wy0, box[2] - wx0, box[3] - wy0],
    wh,
    ww,
    0.5,
  );
  // Runs down each column of the full image; columns and rows outside the window are zeros.
  const counts: number[] = [];
  let value = 0;
  let run = 0;
  const zeros = (n: number) => {
    if (n === 0) return;
    if (value !== 0) {
      counts.push(run);
      run = 0;
      value = 0;
    }
    run += n;
  };
  zeros(wx0 * height);
  for (let x = 0; x < ww; x++) {
    zeros(wy0);
    for (let i = x; i < window.length; i += ww) {
      const v = window[i]!;
      if (v !== value) {
        counts.push(run);
        run = 0;
        value = v;
      }
      run++;
    }
    zeros(height - wy1);
  }
  zeros((width - wx1) * height);
  counts.push(run);
  return { size: [height, width], counts };
}
