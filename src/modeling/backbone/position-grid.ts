import { tf } from '../../engine/engine.js';

/** PyTorch's cubic convolution coefficient for mode="bicubic". */
const CUBIC_A = -0.75;

function cubicNear(x: number): number {
  return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1;
}

function cubicFar(x: number): number {
  return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A;
}

/**
 * The [outSize, inSize] matrix of 1-D bicubic resampling with PyTorch's
 * F.interpolate(mode="bicubic", align_corners=False) semantics: source coordinate
 * (i + 0.5) * in/out - 0.5 (not clamped), four taps with A = -0.75, tap indices clamped to the border.
 * Resizing a grid is then two small matMuls, which keeps the resize differentiable.
 */
export function bicubicResizeMatrix(inSize: number, outSize: number): Float32Array {
  if (!Number.isInteger(inSize) || !Number.isInteger(outSize) || inSize < 1 || outSize < 1) {
    throw new Error(`bicubicResizeMatrix: sizes must be positive integers, got ${inSize} -> ${outSize}`);
  }
  const m = new Float32Array(outSize * inSize);
  if (inSize === outSize) {
    for (let i = 0; i < outSize; i++) m[i * inSize + i] = 1;
    return m;
  }
  const scale = inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    const real = scale * (i + 0.5) - 0.5;
    const base = Math.floor(real);
    const t = real - base;
    const weights = [cubicFar(t + 1), cubicNear(t), cubicNear(1 - t), cubicFar(2 - t)];
    for (let k = 0; k < 4; k++) {
      const src = Math.min(Math.max(base - 1 + k, 0), inSize - 1);
      m[i * inSize + src]! += weights[k]!;
    }
  }
  return m;
}

/**
 * Bicubic resize of a [h, w, C] grid to [outH, outW, C] (PyTorch bicubic, align_corners=False),
 * as rows-then-columns matMuls. Differentiable in `grid`.
 */
export function resizeGridBicubic(grid: tf.Tensor, outH: number, outW: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [h, w, c] = grid.shape as [number, number, number];
    if (h === outH && w === outW) return tf.reshape(grid, [h, w, c]) as tf.Tensor3D;
    const ry = tf.tensor2d(bicubicResizeMatrix(h, outH), [outH, h]);
    const rx = tf.tensor2d(bicubicResizeMatrix(w, outW), [outW, w]);
    const rows = tf.reshape(tf.matMul(ry, tf.reshape(grid, [h, w * c])), [outH, w, c]);
    const cols = tf.matMul(rx, tf.reshape(tf.transpose(rows, [1, 0, 2]), [w, outH * c]));
    return tf.transpose(tf.reshape(cols, [outW, outH, c]), [1, 0, 2]) as tf.Tensor3D;
  });
}

/**
 * ViTDet's get_abs_pos: the pre-training position table [1, (cls) + s*s, C] (cls slot first when
 * `hasClsToken`) resized to the token grid, returned as [h, w, C].
 */
export function absolutePositionGrid(posEmbed: tf.Tensor, hasClsToken: boolean, h: number, w: number): tf.Tensor3D {
  return tf.tidy(() => {
    const c = posEmbed.shape[posEmbed.shape.length - 1]!;
    let table = tf.reshape(posEmbed, [-1, c]);
    if (hasClsToken) table = tf.slice(table, [1, 0], [table.shape[0]! - 1, c]);
    const n = table.shape[0]!;
    const s = Math.round(Math.sqrt(n));
    if (s * s !== n) throw new Error(`absolutePositionGrid: ${n} positions do not form a square grid`);
    return resizeGridBicubic(tf.reshape(table, [s, s, c]), h, w);
  });
}
