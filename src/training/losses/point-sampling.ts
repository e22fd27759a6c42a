import { tf } from '../../engine/engine.js';
import type { Rng } from '../../util/random.js';
import { bilinearAt } from './mask-targets.js';

/**
 * Point-sampled mask losses (PointRend / Mask2Former): instead of every pixel, each mask is
 * compared at a few points, most of them where the prediction is least certain.
 */
export interface PointSamplingOptions {
  numPoints: number;
  /** Candidates drawn per kept point (Mask2Former: 3). */
  oversample: number;
  /** Share of points taken from the most uncertain candidates, the rest uniform (0.75). */
  importance: number;
}

/**
 * Point coordinates [M, N, 2] (x, y normalised) per mask, chosen on the detached logits
 * `logits` ([M, h, w] row-major). Uncertainty is -|logit| at the candidate.
 */
export function uncertainPointCoords(
  rng: Rng,
  logits: Float32Array,
  numMasks: number,
  h: number,
  w: number,
  options: PointSamplingOptions,
): Float32Array {
  const n = options.numPoints;
  const candidates = Math.max(n, Math.round(n * options.oversample));
  const important = Math.min(n, Math.round(n * options.importance));
  const out = new Float32Array(numMasks * n * 2);
  const cx = new Float32Array(candidates);
  const cy = new Float32Array(candidates);
  const score = new Float32Array(candidates);
  const order = new Int32Array(candidates);
  for (let m = 0; m < numMasks; m++) {
    const map = logits.subarray(m * h * w, (m + 1) * h * w);
    for (let c = 0; c < candidates; c++) {
      cx[c] = rng.next();
      cy[c] = rng.next();
      score[c] = -Math.abs(bilinearAt(map, h, w, cx[c]!, cy[c]!));
      order[c] = c;
    }
    order.sort((a, b) => score[b]! - score[a]! || a - b);
    const base = m * n * 2;
    for (let i = 0; i < important; i++) {
      out[base + 2 * i] = cx[order[i]!]!;
      out[base + 2 * i + 1] = cy[order[i]!]!;
    }
    for (let i = important; i < n; i++) {
      out[base + 2 * i] = rng.next();
      out[base + 2 * i + 1] = rng.next();
    }
  }
  return out;
}

/**
 * Bilinear samples of `maps` ([M, h*w] or [M, h, w], differentiable) at `coords` ([M, N, 2]),
 * built from one flat gather of the four corners so that the gradient is a scatter-add.
 */
export function pointSampleTensor(
  maps: tf.Tensor,
  coords: Float32Array,
  numMasks: number,
  h: number,
  w: number,
): tf.Tensor2D {
  const n = coords.length / (2 * numMasks);
  if (!Number.isInteger(n)) throw new Error(`pointSampleTensor: ${coords.length} coordinates for ${numMasks} masks`);
  const index = new Int32Array(numMasks * n * 4);
  const weight = new Float32Array(numMasks * n * 4);
  for (let m = 0; m < numMasks; m++) {
    for (let i = 0; i < n; i++) {
      const k = m * n + i;
      const px = coords[2 * k]! * w - 0.5;
      const py = coords[2 * k + 1]! * h - 0.5;
      const x0 = Math.floor(px);
      const y0 = Math.floor(py);
      const ax = px - x0;
      const ay = py - y0;
      for (let c = 0; c < 4; c++) {
        const xx = x0 + (c & 1);
        const yy = y0 + (c >> 1);
        const inside = xx >= 0 && xx < w && yy >= 0 && yy < h;
        index[4 * k + c] = m * h * w + (inside ? yy * w + xx : 0);
        weight[4 * k + c] = inside ? (c & 1 ? ax : 1 - ax) * (c >> 1 ? ay : 1 - ay) : 0;
      }
    }
  }
  return tf.tidy(() => {
    const flat = tf.reshape(maps, [numMasks * h * w]);
    const corners = tf.reshape(tf.gather(flat, tf.tensor1d(index, 'int32')), [numMasks, n, 4]);
    return tf.sum(tf.mul(corners, tf.tensor3d(weight, [numMasks, n, 4])), 2) as tf.Tensor2D;
  });
}

/** Target values at the same points, from binary masks at H x W (one per matched mask). */
export function pointSampleMasks(masks: Uint8Array[], H: number, W: number, coords: Float32Array): Float32Array {
  const n = coords.length / (2 * masks.length);
  const out = new Float32Array(masks.length * n);
  masks.forEach((mask, m) => {
    for (let i = 0; i < n; i++) {
      const k = m * n + i;
      out[k] = bilinearAt(mask, H, W, coords[2 * k]!, coords[2 * k + 1]!);
    }
  });
  return out;
}
