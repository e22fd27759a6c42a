import { boxArea, boxAt, type Box, type BoxLike } from './boxes.js';

/** IoU of two xyxy boxes; 0 when the union is empty. */
export function boxIou(a: BoxLike, b: BoxLike): number {
  const iw = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const ih = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  const inter = iw > 0 && ih > 0 ? iw * ih : 0;
  const union = boxArea(a) + boxArea(b) - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * Generalised IoU (Rezatofighi et al.) of two xyxy boxes: IoU minus the share of the enclosing box
 * that the union does not cover. In [-1, 1].
 */
export function boxGiou(a: BoxLike, b: BoxLike): number {
  const iw = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const ih = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  const inter = iw > 0 && ih > 0 ? iw * ih : 0;
  const union = boxArea(a) + boxArea(b) - inter;
  const iou = union > 0 ? inter / union : 0;
  const enclosing = (Math.max(a[2], b[2]) - Math.min(a[0], b[0])) * (Math.max(a[3], b[3]) - Math.min(a[1], b[1]));
  return enclosing > 0 ? iou - (enclosing - union) / enclosing : iou;
}

/** IoU of every xyxy box in a against every one in b: result[i][j] = IoU(a[i], b[j]). */
export function pairwiseIou(a: readonly Box[], b: readonly Box[]): number[][] {
  return a.map((p) => b.map((q) => boxIou(p, q)));
}

/** GIoU of every xyxy box in a against every one in b: result[i][j] = GIoU(a[i], b[j]). */
export function pairwiseGiou(a: readonly Box[], b: readonly Box[]): number[][] {
  return a.map((p) => b.map((q) => boxGiou(p, q)));
}

/** Flat form of pairwiseIou: a is N*4, b is M*4 (xyxy), result is row-major N*M. */
export function pairwiseIouFlat(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const n = a.length / 4;
  const m = b.length / 4;
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    const p = boxAt(a, i);
    for (let j = 0; j < m; j++) out[i * m + j] = boxIou(p, boxAt(b, j));
  }
  return out;
}

/**
 * COCO's box IoU (pycocotools bbIou) on xywh boxes: result[d][g]. Where iscrowd[g] is set the
 * ground truth is a crowd region and the overlap is divided by the detection's area instead of the
 * union, so a detection inside a crowd scores 1.
 */
export function pairwiseIouXywh(
  dt: readonly BoxLike[],
  gt: readonly BoxLike[],
  iscrowd?: readonly boolean[],
): number[][] {
  return dt.map((d) => {
    const da = d[2] * d[3];
    return gt.map((g, j) => {
      const w = Math.min(d[2] + d[0], g[2] + g[0]) - Math.max(d[0], g[0]);
      if (w <= 0) return 0;
      const h = Math.min(d[3] + d[1], g[3] + g[1]) - Math.max(d[1], g[1]);
      if (h <= 0) return 0;
      const i = w * h;
      const u = iscrowd?.[j] ? da : da + g[2] * g[3] - i;
      return i / u;
    });
  });
}
