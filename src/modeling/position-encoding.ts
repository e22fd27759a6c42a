import { tf } from '../engine/engine.js';

/**
 * Sine position encodings. Those of the feature maps are computed on the host (they depend only
 * on shapes and padding), with every step rounded to float32 so the numbers follow PyTorch's
 * float32 arithmetic; that of the proposals depends on the image and is tensor arithmetic.
 */
const f = Math.fround;

/** temperature ** (2 * floor(i / 2) / numFeats) for i < numFeats, as PyTorch computes it in float32. */
export function sineFrequencies(numFeats: number, temperature = 10000): Float32Array {
  const out = new Float32Array(numFeats);
  for (let i = 0; i < numFeats; i++) out[i] = f(temperature ** f(f(2 * Math.floor(i / 2)) / numFeats));
  return out;
}

export interface SineEmbeddingOptions {
  numPosFeats: number;
  temperature?: number;
  offset?: number;
  scale?: number;
  eps?: number;
}

/**
 * detrex PositionEmbeddingSine(normalize=True) of one image's padding mask, laid out [H, W, 2 * numPosFeats]
 * (channels: y features then x features, sin/cos interleaved). The valid region is the top-left
 * validH x validW rectangle; padded pixels follow the reference's cumulative-sum formula exactly,
 * including its extreme values in padded columns/rows.
 */
export function sinePositionEmbedding(
  height: number,
  width: number,
  validH: number,
  validW: number,
  options: SineEmbeddingOptions,
): Float32Array {
  const n = options.numPosFeats;
  const offset = options.offset ?? -0.5;
  const scale = f(options.scale ?? 2 * Math.PI);
  const eps = options.eps ?? 1e-6;
  const dimT = sineFrequencies(n, options.temperature ?? 10000);
  const encode = (cum: number, last: number) => {
    const value = f(f(f(cum + offset) / f(last + eps)) * scale);
    const row = new Float32Array(n);
    for (let i = 0; i < n; i++) row[i] = i % 2 === 0 ? Math.sin(f(value / dimT[i]!)) : Math.cos(f(value / dimT[i]!));
    return row;
  };
  // not_mask.cumsum along an axis and its last entry: in a padded column (row) both are 0.
  const padded = encode(0, 0);
  const yRows = Array.from({ length: height }, (_, y) => encode(Math.min(y + 1, validH), validH));
  const xCols = Array.from({ length: width }, (_, x) => encode(Math.min(x + 1, validW), validW));
  const out = new Float32Array(height * width * 2 * n);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 2 * n;
      out.set(x < validW ? yRows[y]! : padded, o);
      out.set(y < validH ? xCols[x]! : padded, o + n);
    }
  }
  return out;
}

/**
 * Deformable DETR's get_proposal_pos_embed of unactivated boxes [B, Q, 4] computed in the forward:
 * sigmoid(box) * 2π divided by the frequencies, sin at even and cos at odd features,
 * [B, Q, 4 * numPosFeats].
 */
export function proposalPositionEmbedding(
  boxesUnact: tf.Tensor3D,
  numPosFeats: number,
  temperature = 10000,
): tf.Tensor3D {
  const [b, q] = boxesUnact.shape;
  const n = numPosFeats;
  return tf.tidy(() => {
    const even = Float32Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 1 : 0));
    const angles = tf.div(
      tf.mul(tf.expandDims(tf.sigmoid(boxesUnact), 3), f(2 * Math.PI)),
      tf.tensor1d(sineFrequencies(n, temperature)),
    );
    const evenMask = tf.tensor1d(even);
    // sin at even features, cos at odd ones.
    const mixed = tf.add(tf.mul(tf.sin(angles), evenMask), tf.mul(tf.cos(angles), tf.sub(1, evenMask)));
    return tf.reshape(mixed, [b, q, 4 * n]) as tf.Tensor3D;
  });
}
