import { tf } from '../engine/engine.js';

/** Largest number of accumulated values (mask pixels x prompts) computed at once. */
export const CHUNK_VALUES = 1 << 23;

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
 * Semantic accumulation (APE's thing-stuff equalizing at inference): prompt weights
 * S = softmax(sigmoid(logits) / T) over prompts, masks M = sigmoid(mask logits), and per prompt
 * M_hat[c] = sum_q S[q, c] M[q]. Returned transposed, one row per mask pixel: [h*w, count] for
 * prompts start .. start + count - 1. logits [Q, P], maskLogits [Q, h*w].
 */
export function semanticAccumulator(
  logits: tf.Tensor2D,
  maskLogits: tf.Tensor2D,
  temperature: number,
): { source: (start: number, count: number) => tf.Tensor2D; dispose(): void } {
  const weights = tf.tidy(() => tf.softmax(tf.div(tf.sigmoid(logits), temperature)) as tf.Tensor2D); // [Q, P]
  const masksT = cellMaskProbabilities(maskLogits);
  const p = weights.shape[1];
  return {
    source: (start, count) =>
      tf.tidy(
        () =>
          tf.matMul(
            masksT,
            start === 0 && count === p ? weights : tf.slice(weights, [0, start], [-1, count]),
          ) as tf.Tensor2D,
      ),
    dispose: () => tf.dispose([weights, masksT]),
  };
}

/**
 * The queries' mask probabilities per mask cell, [h*w, Q] = sigmoid of the mask logits [Q, h*w],
 * transposed: the left operand of the semantic accumulation and of the confidence. Made once per
 * image and shared by both and by every variant (at 1024 with 900 queries it is 236 MB, and the
 * transpose is most of the accumulation's time).
 */
export function cellMaskProbabilities(maskLogits: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.transpose(tf.sigmoid(maskLogits)) as tf.Tensor2D);
}

/**
 * Label map at the original size from the per-prompt maps: each pixel takes the prompt with the
 * largest bilinearly interpolated value, or -1 where the constant background channel is larger
 * (ties go to the prompt with the lowest index, then to prompts over the background, as an argmax
 * over [prompts..., background] does). Exact without interpolating every prompt everywhere: inside
 * a grid cell a prompt can only win if its largest corner value reaches the cell's best smallest
 * corner value, so only those candidates are interpolated per pixel.
 * `source(start, count)` gives the maps [h*w, count] (see semanticAccumulator).
 */
export function semanticLabels(
  source: (start: number, count: number) => tf.Tensor2D,
  numPrompts: number,
  geometry: SemanticGeometry,
  background: number,
  chunkValues = CHUNK_VALUES,
): Int32Array {
  const { maskH: h, maskW: w } = geometry;
  const cells = h * w;
  const chunk = Math.max(1, Math.floor(chunkValues / cells));
  // Corner pixels of cell (i, j): (i, j), (i, j+1), (i+1, j), (i+1, j+1), clamped at the edges.
  const corners = new Int32Array(cells * 4);
  for (let cell = 0; cell < cells; cell++) {
    const i = Math.floor(cell / w);
    const j = cell % w;
    const i1 = Math.min(i + 1, h - 1);
    const j1 = Math.min(j + 1, w - 1);
    corners.set([i * w + j, i * w + j1, i1 * w + j, i1 * w + j1], cell * 4);
  }
  const chunks: { start: number; count: number }[] = [];
  for (let start = 0; start < numPrompts; start += chunk)
    chunks.push({ start, count: Math.min(chunk, numPrompts - start) });
  const read = (start: number, count: number): Float32Array => {
    const maps = source(start, count);
    const values = maps.dataSync() as Float32Array;
    maps.dispose();
    return values;
  };

  const single = chunks.length === 1 ? read(0, numPrompts) : null;
  // Each pass visits every cell of every chunk with the chunk's maps and where the cell's four
  // corner values of prompt start + k sit in them (a + k, b + k, c + k, d + k).
  const eachCell = (
    visit: (
      v: Float32Array,
      start: number,
      count: number,
      cell: number,
      a: number,
      b: number,
      c: number,
      d: number,
    ) => void,
  ) => {
    for (const { start, count } of chunks) {
      const v = single ?? read(start, count);
      for (let cell = 0; cell < cells; cell++) {
        visit(
          v,
          start,
          count,
          cell,
          corners[cell * 4]! * count,
          corners[cell * 4 + 1]! * count,
          corners[cell * 4 + 2]! * count,
          corners[cell * 4 + 3]! * count,
        );
      }
    }
  };

  // Pass 1: the best smallest-corner value per cell (the background channel included).
  const lower = new Float32Array(cells).fill(background);
  eachCell((v, _start, count, cell, a, b, c, d) => {
    let best = lower[cell]!;
    for (let k = 0; k < count; k++) {
      let m = v[a + k]!;
      const vb = v[b + k]!;
      const vc = v[c + k]!;
      const vd = v[d + k]!;
      if (vb < m) m = vb;
      if (vc < m) m = vc;
      if (vd < m) m = vd;
      if (m > best) best = m;
    }
    lower[cell] = best;
  });

  // Pass 2: per cell, the prompts whose largest corner reaches that value, with their corners.
  const candidates: number[][] = Array.from({ length: cells }, () => []);
  eachCell((v, start, count, cell, a, b, c, d) => {
    const bound = lower[cell]!;
    const list = candidates[cell]!;
    for (let k = 0; k < count; k++) {
      const va = v[a + k]!;
      const vb = v[b + k]!;
      const vc = v[c + k]!;
      const vd = v[d + k]!;
      if (va >= bound || vb >= bound || vc >= bound || vd >= bound) list.push(start + k, va, vb, vc, vd);
    }
  });
  return labelPixels(candidates, geometry, background);
}

/** Interpolates each cell's candidates at every original pixel (original -> input -> mask grid). */
function labelPixels(candidates: number[][], geometry: SemanticGeometry, background: number): Int32Array {
  const { maskH: h, maskW: w, width, height, stride } = geometry;
  const labels = new Int32Array(width * height);
  const sx = geometry.resizedW / width;
  const sy = geometry.resizedH / height;
  const clampTo = (x: number, hi: number) => Math.min(Math.max(x, 0), hi);
  const j0s = new Int32Array(width);
  const axs = new Float64Array(width);
  for (let x = 0; x < width; x++) {
    const vx = clampTo(((x + 0.5) * sx) / stride - 0.5, w - 1);
    j0s[x] = Math.floor(vx);
    axs[x] = vx - j0s[x]!;
  }
  for (let y = 0; y < height; y++) {
    const vy = clampTo(((y + 0.5) * sy) / stride - 0.5, h - 1);
    const i0 = Math.floor(vy);
    const ay = vy - i0;
    for (let x = 0; x < width; x++) {
      const ax = axs[x]!;
      const list = candidates[i0 * w + j0s[x]!]!;
      let best = -1;
      let bestValue = -Infinity;
      // Candidates come in prompt order, so a strict > keeps the lowest index on ties.
      for (let k = 0; k < list.length; k += 5) {
        const value =
          (list[k + 1]! * (1 - ax) + list[k + 2]! * ax) * (1 - ay) + (list[k + 3]! * (1 - ax) + list[k + 4]! * ax) * ay;
        if (value > bestValue) {
          bestValue = value;
          best = list[k]!;
        }
      }
      labels[y * width + x] = best >= 0 && bestValue >= background ? best : -1;
    }
  }
  return labels;
}
