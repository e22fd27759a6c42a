import { assertMaskSize, type Rle } from './rle.js';
import { rleMerge } from './rle-merge.js';
import type { BoxLike } from './boxes.js';

/**
 * Polygon rasterisation identical to pycocotools (maskApi.c rleFrPoly): the outline is traced on
 * a 5x finer grid, the crossings of the pixel-centre columns are kept, and the runs are read off
 * them, so COCO polygon areas and IoUs come out exactly as the reference computes them.
 */

const SCALE = 5;
/** Upper bound on the traced outline length (fine-grid steps), so absurd coordinates cannot stall or exhaust memory. */
export const MAX_POLYGON_STEPS = 2 ** 27;

/** Rasterises one ring [x0, y0, x1, y1, ...] (an odd trailing value is ignored, as in the reference). */
export function rleFromPolygonRing(xy: ArrayLike<number>, h: number, w: number): Rle {
  assertMaskSize(h, w, 'rleFromPolygon');
  const k = Math.floor(xy.length / 2);
  const x = new Array<number>(k + 1);
  const y = new Array<number>(k + 1);
  for (let j = 0; j < k; j++) {
    const px = xy[2 * j]!;
    const py = xy[2 * j + 1]!;
    if (!Number.isFinite(px) || !Number.isFinite(py) || Math.abs(px) > 1e8 || Math.abs(py) > 1e8) {
      throw new Error(`rleFromPolygon: point ${j} (${px}, ${py}) is not a pair of finite coordinates within 1e8`);
    }
    // C's (int) cast truncates toward zero.
    x[j] = Math.trunc(SCALE * px + 0.5);
    y[j] = Math.trunc(SCALE * py + 0.5);
  }
  x[k] = x[0]!;
  y[k] = y[0]!;
  let steps = 0;
  for (let j = 0; j < k; j++) steps += Math.max(Math.abs(x[j]! - x[j + 1]!), Math.abs(y[j]! - y[j + 1]!)) + 1;
  if (steps > MAX_POLYGON_STEPS) {
    throw new Error(
      `rleFromPolygon: outline of ${steps} fine-grid steps exceeds ${MAX_POLYGON_STEPS} (coordinates far outside a ${w}x${h} image?)`,
    );
  }

  // Trace the outline point by point; keep, at each change of fine-grid column, the boundary
  // point where a pixel-centre column is crossed.
  const bx: number[] = [];
  const by: number[] = [];
  let first = true;
  let pu = 0;
  let pv = 0;
  const visit = (u: number, v: number): void => {
    if (!first && u !== pu) {
      let xd = u < pu ? u : u - 1;
      xd = (xd + 0.5) / SCALE - 0.5;
      if (Math.floor(xd) === xd && xd >= 0 && xd <= w - 1) {
        let yd = Math.min(v, pv);
        yd = (yd + 0.5) / SCALE - 0.5;
        if (yd < 0) yd = 0;
        else if (yd > h) yd = h;
        bx.push(xd);
        by.push(Math.ceil(yd));
      }
    }
    first = false;
    pu = u;
    pv = v;
  };
  for (let j = 0; j < k; j++) {
    let xs = x[j]!;
    let xe = x[j + 1]!;
    let ys = y[j]!;
    let ye = y[j + 1]!;
    const dx = Math.abs(xe - xs);
    const dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      [xs, xe] = [xe, xs];
      [ys, ye] = [ye, ys];
    }
    if (dx >= dy) {
      // A zero-length edge gives 0/0 in the reference; its single point never starts a column change.
      const s = dx === 0 ? 0 : (ye - ys) / dx;
      for (let d = 0; d <= dx; d++) {
        const t = flip ? dx - d : d;
        visit(t + xs, Math.trunc(ys + s * t + 0.5));
      }
    } else {
      const s = (xe - xs) / dy;
      for (let d = 0; d <= dy; d++) {
        const t = flip ? dy - d : d;
        visit(Math.trunc(xs + s * t + 0.5), t + ys);
      }
    }
  }

  // Column-major pixel index of each boundary point, sorted; the gaps between them are the runs.
  const n = bx.length;
  const a = new Float64Array(n + 1);
  for (let j = 0; j < n; j++) a[j] = bx[j]! * h + by[j]!;
  a[n] = h * w;
  a.sort();
  let previous = 0;
  for (let j = 0; j <= n; j++) {
    const t = a[j]!;
    a[j]! -= previous;
    previous = t;
  }
  // Empty runs are dropped by joining their neighbours.
  const counts: number[] = [a[0]!];
  let j = 1;
  while (j <= n) {
    if (a[j]! > 0) counts.push(a[j++]!);
    else {
      j++;
      if (j <= n) counts[counts.length - 1]! += a[j++]!;
    }
  }
  return { size: [h, w], counts };
}

/** Rasterises a COCO polygon list (one object, possibly several rings) into one mask: the union of its rings. */
export function rleFromPolygon(polygons: readonly ArrayLike<number>[], h: number, w: number): Rle {
  if (polygons.length === 0) return { size: [h, w], counts: [h * w] };
  return rleMerge(polygons.map((p) => rleFromPolygonRing(p, h, w)));
}

/** Mask of an xywh box, rasterised as the polygon of its corners (maskApi.c rleFrBbox). */
export function rleFromBbox(box: BoxLike, h: number, w: number): Rle {
  const [xs, ys, bw, bh] = box;
  const xe = xs + bw;
  const ye = ys + bh;
  return rleFromPolygonRing([xs, ys, xs, ye, xe, ye, xe, ys], h, w);
}
