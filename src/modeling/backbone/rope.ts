import { tf } from '../../engine/engine.js';

/** How EVA-02's VisionRotaryEmbeddingFast places token positions on the rotary frequencies. */
export interface VisionRopeOptions {
  /** Channels per attention head; the rotary table covers all of them (half rows, half columns). */
  headDim: number;
  /** Side of the pre-training token grid (EVA-02: 16). */
  ptSeqLen: number;
  /**
   * true (intp_freq): positions t = arange(n) / n * ptSeqLen, so any grid spans the pre-training range.
   * false: t = arange(n) (raw token positions).
   */
  interpolate: boolean;
  /** Frequency base (10000). */
  theta?: number;
}

/**
 * cos/sin tables [rows*cols, headDim] for a rows x cols token grid (row-major tokens), with
 * VisionRotaryEmbeddingFast semantics: per-axis frequencies 1/theta^(2i/d) for d = headDim/2, each
 * repeated twice (interleaved pairs), the first d channels rotated by the row coordinate and the
 * last d by the column coordinate. Computed in float64, returned as float32.
 */
export function visionRopeTables(
  rows: number,
  cols: number,
  options: VisionRopeOptions,
): { cos: Float32Array; sin: Float32Array } {
  const { headDim, ptSeqLen, interpolate } = options;
  const theta = options.theta ?? 10000;
  if (headDim % 4 !== 0) throw new Error(`visionRopeTables: head dim ${headDim} must be a multiple of 4`);
  const half = headDim / 2;
  const freqs: number[] = [];
  for (let i = 0; i < half; i += 2) freqs.push(1 / theta ** (i / half));
  const position = (index: number, n: number): number => (interpolate ? (index / n) * ptSeqLen : index);
  const cos = new Float32Array(rows * cols * headDim);
  const sin = new Float32Array(rows * cols * headDim);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const base = (r * cols + c) * headDim;
      const tr = position(r, rows);
      const tc = position(c, cols);
      for (let f = 0; f < freqs.length; f++) {
        const ar = tr * freqs[f]!;
        const ac = tc * freqs[f]!;
        for (let k = 0; k < 2; k++) {
          cos[base + 2 * f + k] = Math.cos(ar);
          sin[base + 2 * f + k] = Math.sin(ar);
          cos[base + half + 2 * f + k] = Math.cos(ac);
          sin[base + half + 2 * f + k] = Math.sin(ac);
        }
      }
    }
  }
  return { cos, sin };
}

/** (x0, x1) -> (-x1, x0) on interleaved channel pairs, as a [*, 2] x [2, 2] matMul (fast on wasm, differentiable). */
export function rotateHalf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const pairs = tf.reshape(x, [-1, 2]);
    const rotation = tf.tensor2d([0, 1, -1, 0], [2, 2]);
    return tf.reshape(tf.matMul(pairs, rotation), x.shape);
  });
}

/**
 * Rotary tables as tensors, laid out for tokens [*, n, heads * headDim]: the per-head table is
 * repeated across heads so that RoPE is applied before the head split.
 */
export interface RopeTensors {
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
}

export function ropeTensors(rows: number, cols: number, heads: number, options: VisionRopeOptions): RopeTensors {
  const { cos, sin } = visionRopeTables(rows, cols, options);
  const n = rows * cols;
  const d = options.headDim;
  const tile = (t: Float32Array): tf.Tensor2D => {
    const out = new Float32Array(n * heads * d);
    for (let i = 0; i < n; i++) {
      for (let h = 0; h < heads; h++) out.set(t.subarray(i * d, (i + 1) * d), (i * heads + h) * d);
    }
    return tf.tensor2d(out, [n, heads * d]);
  };
  return { cos: tile(cos), sin: tile(sin) };
}

/** x * cos + rotateHalf(x) * sin for x [B, n, C] with tables [n, C]. */
export function applyRope(x: tf.Tensor, rope: RopeTensors): tf.Tensor {
  return tf.tidy(() => tf.add(tf.mul(x, rope.cos), tf.mul(rotateHalf(x), rope.sin)));
}
