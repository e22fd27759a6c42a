import { tf } from '../engine/engine.js';

/** Largest number of accumulated values (prompts x mask pixels) held at once. */
const CHUNK_VALUES = 1 << 24;

export interface SemanticGeometry {
  /** Mask grid over the padded input. */
  maskH: number;
  maskW: number;
  stride: number;
  /** Valid (resized) image size in input pixels, and the original size. */
  resizedW: number;
  resizedH: number;
  width: number;
  height: number;
}

/**
 * Semantic accumulation (APE's "thing-stuff equalizing" at inference): prompt weights
 * S = softmax(sigmoid(logits) / T) over prompts, masks M = sigmoid(mask logits), the per-prompt
 * map M_hat[c] = sum_q S[q, c] M[q] ([P, h*w], host arrays in prompt chunks).
 * logits [Q, P], maskLogits [Q, h*w].
 */
export function* accumulateSemantic(logits: tf.Tensor2D, maskLogits: tf.Tensor2D, temperature: number): Generator<{ start: number; count: number; values: Float32Array }> {
  const [q, p] = logits.shape;
  const pixels = maskLogits.shape[1];
  const chunk = Math.max(1, Math.floor(CHUNK_VALUES / pixels));
  const weightsT = tf.tidy(() => tf.transpose(tf.softmax(tf.div(tf.sigmoid(logits), temperature))) as tf.Tensor2D); // [P, Q]
  const masks = tf.sigmoid(maskLogits) as tf.Tensor2D;
  try {
    for (let start = 0; start < p; start += chunk) {
      const count = Math.min(chunk, p - start);
      const part = tf.tidy(() => tf.matMul(tf.slice(weightsT, [start, 0], [count, q]), masks));
      const values = part.dataSync() as Float32Array;
      part.dispose();
      yield { start, count, values };
    }
  } finally {
    tf.dispose([weightsT, masks]);
  }
}

/**
 * Label map at the original size from accumulated per-prompt maps: each pixel takes the prompt
 * with the largest bilinearly interpolated value, or -1 when the constant background channel is
 * larger (ties go to the prompt, as argmax takes the first maximum and the background is last).
 * Exact without interpolating every prompt everywhere: a prompt can only win inside a grid cell
 * if its largest corner value reaches the best smallest-corner value of the cell.
 * `chunks` must yield the same data when iterated twice (it is called twice when the maps are large).
 */
export function semanticLabels(
  chunks: () => Iterable<{ start: number; count: number; values: Float32Array }>,
  numPrompts: number,
  geometry: SemanticGeometry,
  background: number,
): Int32Array {
  const { maskH: h, maskW: w } = geometry;
  const cells = h * w;
  // Corner pixel indices of cell (i, j): (i, j), (i, j1), (i1, j), (i1, j1), clamped at the edges.
  const corner = (cell: number, k: number) => {
    const i = Math.floor(cell / w);
    const j = cell % w;
    const i1 = k >= 2 ? Math.min(i + 1, h - 1) : i;
    const j1 = k % 2 === 1 ? Math.min(j + 1, w - 1) : j;
    return i1 * w + j1;
  };
  const corners = new Int32Array(cells * 4);
  for (let c = 0; c < cells; c++) for (let k = 0; k < 4; k++) corners[c * 4 + k] = corner(c, k);

  const stored: { start: number; count: number; values: Float32Array }[] = [];
  const keepAll = numPrompts * cells <= CHUNK_VALUES;
  const lower = new Float32Array(cells).fill(background);
  for (const part of chunks()) {
    if (keepAll) stored.push(part);
    for (let c = 0; c < part.count; c++) {
      const base = c * cells;
      for (let cell = 0; cell < cells; cell++) {
        const o = cell * 4;
        const v = part.values;
        const m = Math.min(v[base + corners[o]!]!, v[base + corners[o + 1]!]!, v[base + corners[o + 2]!]!, v[base + corners[o + 3]!]!);
        if (m > lower[cell]!) lower[cell] = m;
      }
    }
  }
  // Candidates per cell: prompt id and its four corner values.
  const candidates: number[][] = Array.from({ length: cells }, () => []);
  for (const part of keepAll ? stored : chunks()) {
    for (let c = 0; c < part.count; c++) {
      const base = c * cells;
      const v = part.values;
      for (let cell = 0; cell < cells; cell++) {
        const o = cell * 4;
        const a = v[base + corners[o]!]!;
        const b = v[base + corners[o + 1]!]!;
        const d = v[base + corners[o + 2]!]!;
        const e = v[base + corners[o + 3]!]!;
        if (Math.max(a, b, d, e) >= lower[cell]!) candidates[cell]!.push(part.start + c, a, b, d, e);
      }
    }
  }

  const { width, height } = geometry;
  const labels = new Int32Array(width * height);
  const sx = geometry.resizedW / width;
  const sy = geometry.resizedH / height;
  const stride = geometry.stride;
  const clampTo = (x: number, hi: number) => Math.min(Math.max(x, 0), hi);
  for (let y = 0; y < height; y++) {
    // original pixel -> input pixel (resize to the original size) -> mask grid (upsampling).
    const vy = clampTo(((y + 0.5) * sy) / stride - 0.5, h - 1);
    const i0 = Math.floor(vy);
    const ay = vy - i0;
    for (let x = 0; x < width; x++) {
      const vx = clampTo(((x + 0.5) * sx) / stride - 0.5, w - 1);
      const j0 = Math.floor(vx);
      const ax = vx - j0;
      const list = candidates[i0 * w + j0]!;
      let best = -1;
      let bestValue = -Infinity;
      for (let k = 0; k < list.length; k += 5) {
        const top = list[k + 1]! * (1 - ax) + list[k + 2]! * ax;
        const bottom = list[k + 3]! * (1 - ax) + list[k + 4]! * ax;
        const value = top * (1 - ay) + bottom * ay;
        if (value > bestValue || (value === bestValue && list[k]! < best)) {
          bestValue = value;
          best = list[k]!;
        }
      }
      labels[y * width + x] = best >= 0 && bestValue >= background ? best : -1;
    }
  }
  return labels;
}
