/**
 * Training-only decoder queries for contrastive denoising (DINO's CDN, with Mask DINO's mask
 * targets): what the network takes from the trainer, and how it turns that into decoder input.
 * Inference never builds them; with them, the proposal queries' outputs stay what they would be
 * without (the attention bias hides the denoising queries from them).
 */
import { tf } from '../engine/engine.js';
import { detach } from '../nn/ops.js';
import type { Linear } from '../nn/linear.js';
import type { DenoisingQueries } from './deformable/transformer.js';

/** The trainer's denoising queries for one batch (host arrays; training/denoising/ makes them). */
export interface DenoisingInput {
  /** Denoising queries per image (D); the decoder runs D + Q queries. */
  count: number;
  /** [B, D, 4] noised boxes, cxcywh in [0, 1] of each image's valid region. */
  boxes: Float32Array;
  /** [B, D] the prompt column each query's content names (noised), or -1 for none. */
  labels: Int32Array;
  /** [B, D + Q, D + Q] 1 where a query (row) must not see another (column). */
  blocked: Uint8Array;
}

/** Added to a hidden key's attention score: its softmax weight underflows to exactly 0. */
const HIDDEN = -1e9;

/**
 * The tensors of `input` for the transformer. A query's label content is the first decoder
 * layer's classifier projection of its prompt (W (e/2) + b with e the L2-normalised prompt
 * embedding; the direction the classifier scores that prompt by), standardised over channels and
 * detached: DINO learns a label embedding table, which an open vocabulary cannot have, and the
 * projection already maps any prompt into query space without new parameters, so that the model
 * and its files do not change with the switch. `prompts` [P, Dl] are the prompt embeddings in
 * column order.
 */
export function denoisingQueries(
  input: DenoisingInput,
  prompts: tf.Tensor2D,
  projection: Linear,
  batch: number,
  queries: number,
): DenoisingQueries {
  const d = input.count;
  const t = d + queries;
  if (
    input.boxes.length !== batch * d * 4 ||
    input.labels.length !== batch * d ||
    input.blocked.length !== batch * t * t
  )
    throw new Error(
      `denoising queries: ${input.boxes.length / 4} boxes, ${input.labels.length} labels and a ${input.blocked.length}-entry mask for ${batch} images of ${d} + ${queries} queries`,
    );
  const p = prompts.shape[0];
  const rows = Int32Array.from(input.labels, (label) => {
    if (label >= p) throw new Error(`denoising queries: label ${label} but ${p} prompts`);
    return label < 0 ? p : label;
  });
  const content = tf.tidy(() => {
    const e = tf.div(prompts, tf.maximum(tf.norm(prompts, 'euclidean', 1, true), 1e-12));
    const projected = projection.forward(tf.mul(e, 0.5)) as tf.Tensor2D;
    const { mean, variance } = tf.moments(projected, 1, true);
    const standard = tf.div(tf.sub(projected, mean), tf.sqrt(tf.add(variance, 1e-5)));
    const table = tf.concat([detach(standard), tf.zeros([1, projected.shape[1]])], 0);
    return tf.reshape(tf.gather(table, tf.tensor1d(rows, 'int32')), [batch, d, projected.shape[1]]) as tf.Tensor3D;
  });
  const bias = new Float32Array(input.blocked.length);
  for (let i = 0; i < bias.length; i++) if (input.blocked[i]) bias[i] = HIDDEN;
  return {
    boxes: tf.tensor3d(input.boxes, [batch, d, 4]),
    content,
    attentionBias: tf.tensor3d(bias, [batch, t, t]),
  };
}

/** Splits [B, D + Q, ...] into the first D queries and the other Q (the tensor is disposed). */
export function splitQueries<T extends tf.Tensor>(x: T, d: number): [T, T] {
  const sizes = [d, x.shape[1]! - d];
  const parts = tf.split(x, sizes, 1) as [T, T];
  x.dispose();
  return parts;
}

/** Splits a host [B, D + Q, 4] box array into [B, D, 4] and [B, Q, 4]. */
export function splitQueryBoxes(boxes: Float32Array, batch: number, d: number): [Float32Array, Float32Array] {
  const t = boxes.length / (batch * 4);
  const first = new Float32Array(batch * d * 4);
  const rest = new Float32Array(batch * (t - d) * 4);
  for (let b = 0; b < batch; b++) {
    first.set(boxes.subarray(b * t * 4, (b * t + d) * 4), b * d * 4);
    rest.set(boxes.subarray((b * t + d) * 4, (b + 1) * t * 4), b * (t - d) * 4);
  }
  return [first, rest];
}
