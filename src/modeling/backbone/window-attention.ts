import { tf } from '../../engine/engine.js';

/** Grid geometry of a window partition: the padded size and the window count per axis. */
export interface WindowLayout {
  windowSize: number;
  height: number;
  width: number;
  paddedHeight: number;
  paddedWidth: number;
}

export function windowLayout(height: number, width: number, windowSize: number): WindowLayout {
  if (!(windowSize > 0)) throw new Error(`windowLayout: window size must be positive, got ${windowSize}`);
  const pad = (n: number): number => Math.ceil(n / windowSize) * windowSize;
  return { windowSize, height, width, paddedHeight: pad(height), paddedWidth: pad(width) };
}

/**
 * ViTDet window_partition: [B, H, W, C] -> [B * nWindows, ws * ws, C], zero-padding the grid
 * bottom/right to a multiple of the window; windows row-major, tokens row-major inside. Uses only
 * rank-4 transposes (rank-6 ones are slow on wasm).
 */
export function windowPartition(x: tf.Tensor4D, layout: WindowLayout): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const { windowSize: ws, paddedHeight: hp, paddedWidth: wp } = layout;
    let padded: tf.Tensor4D = x;
    if (hp !== h || wp !== w)
      padded = tf.pad(x, [
        [0, 0],
        [0, hp - h],
        [0, wp - w],
        [0, 0],
      ]);
    const nh = hp / ws;
    const nw = wp / ws;
    // [B*nh, ws, nw, ws*C] -> [B*nh, nw, ws, ws*C]: each window's rows become contiguous.
    const rows = tf.reshape(padded, [b * nh, ws, nw, ws * c]);
    const windows = tf.transpose(rows, [0, 2, 1, 3]);
    return tf.reshape(windows, [b * nh * nw, ws * ws, c]) as tf.Tensor3D;
  });
}

/** Inverse of windowPartition: [B * nWindows, ws * ws, C] -> [B, H, W, C], dropping the padding. */
export function windowUnpartition(windows: tf.Tensor, layout: WindowLayout, batch: number): tf.Tensor4D {
  return tf.tidy(() => {
    const c = windows.shape[windows.shape.length - 1]!;
    const { windowSize: ws, paddedHeight: hp, paddedWidth: wp, height: h, width: w } = layout;
    const nh = hp / ws;
    const nw = wp / ws;
    const grouped = tf.reshape(windows, [batch * nh, nw, ws, ws * c]);
    const rows = tf.transpose(grouped, [0, 2, 1, 3]);
    let grid = tf.reshape(rows, [batch, hp, wp, c]) as tf.Tensor4D;
    if (hp !== h || wp !== w) grid = tf.slice(grid, [0, 0, 0, 0], [batch, h, w, c]);
    return grid;
  });
}
