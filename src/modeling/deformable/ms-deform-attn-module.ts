import { tf } from '../../engine/engine.js';
import { msDeformAttn } from '../../engine/ms-deform-attn.js';
import type { Rng } from '../../util/random.js';
import { Module, init, type Initializer } from '../../nn/module.js';
import { Linear } from '../../nn/linear.js';
import { mapRowChunks, sliceRows } from '../row-chunks.js';
import { tidyKeep } from '../../nn/ops.js';
import { dataInput } from '../../engine/graph-inputs.js';
import { pointSamplingBase } from '../feature-geometry.js';

export type SpatialShapes = readonly (readonly [number, number])[];

/**
 * Where the sampling points of each query start and how offsets scale, as two tensors that
 * broadcast against offsets viewed [B*Lq, heads, levels, points*2]:
 *   location = base + offset * scale.
 */
export interface SamplingFrame {
  /** [B*Lq, 1, levels, points*2] reference (x, y) repeated per point. */
  base: tf.Tensor4D;
  /** [1 or B*Lq, 1, levels, points*2] */
  scale: tf.Tensor4D;
}

/**
 * Encoder-style frame from 2-d reference points [B, Lq, levels, 2] (host array): offsets are in
 * pixels of each level, so scale = (1/W_l, 1/H_l). With `baseInput` the base is that data input
 * (src/engine/graph-inputs.ts): it depends on the padding geometry, the scale on shapes only.
 */
export function pointSamplingFrame(
  reference: Float32Array,
  batch: number,
  numQueries: number,
  shapes: SpatialShapes,
  numPoints: number,
  baseInput?: string,
): SamplingFrame {
  const levels = shapes.length;
  if (reference.length !== batch * numQueries * levels * 2) {
    throw new Error(
      `pointSamplingFrame: reference has ${reference.length} values, expected ${batch}x${numQueries}x${levels}x2`,
    );
  }
  const width = levels * numPoints * 2;
  const base = pointSamplingBase(reference, batch * numQueries, levels, numPoints);
  const baseShape: [number, number, number, number] = [batch * numQueries, 1, levels, numPoints * 2];
  const scale = new Float32Array(width);
  shapes.forEach(([h, w], l) => {
    for (let p = 0; p < numPoints; p++) {
      scale[(l * numPoints + p) * 2] = 1 / w;
      scale[(l * numPoints + p) * 2 + 1] = 1 / h;
    }
  });
  return {
    base: (baseInput ? dataInput(baseInput, base, baseShape) : tf.tensor4d(base, baseShape)) as tf.Tensor4D,
    scale: tf.tensor4d(scale, [1, 1, levels, numPoints * 2]),
  };
}

/**
 * Decoder-style frame from reference boxes [B, Lq, levels, 4] (cx, cy, w, h):
 * location = centre + offset / points * size * 0.5. Tensor arithmetic (no host round trip), so the
 * frame follows the boxes of the previous decoder layer inside a recorded graph.
 */
export function boxSamplingFrame(reference: tf.Tensor4D, numPoints: number): SamplingFrame {
  const [batch, numQueries, levels, four] = reference.shape;
  if (four !== 4)
    throw new Error(`boxSamplingFrame: reference must be [B, Lq, levels, 4], got [${reference.shape.join(', ')}]`);
  return tidyKeep(() => {
    const rows = tf.reshape(reference, [batch * numQueries, 1, levels, 4]);
    const [centre, size] = tf.split(rows, 2, 3) as [tf.Tensor4D, tf.Tensor4D];
    // (x, y) repeated per point: [.., levels, points * 2].
    return {
      base: tf.tile(centre, [1, 1, 1, numPoints]) as tf.Tensor4D,
      scale: tf.tile(tf.mul(size, 0.5 / numPoints), [1, 1, 1, numPoints]) as tf.Tensor4D,
    };
  });
}

/**
 * The frame of queries [start, start + size) of each batch entry (of a frame made for numQueries
 * per entry). Call inside a tidy: a shared scale is returned as is, the rest are new tensors.
 */
export function sliceSamplingFrame(
  frame: SamplingFrame,
  batch: number,
  numQueries: number,
  start: number,
  size: number,
): SamplingFrame {
  const rows = (t: tf.Tensor4D): tf.Tensor4D => {
    if (t.shape[0] !== batch * numQueries) return t; // shared by every query ([1, ...])
    const [, , levels, width] = t.shape;
    const perBatch = tf.reshape(t, [batch, numQueries, levels, width]);
    return tf.reshape(tf.slice(perBatch, [0, start, 0, 0], [batch, size, levels, width]), [
      batch * size,
      1,
      levels,
      width,
    ]);
  };
  return { base: rows(frame.base), scale: rows(frame.scale) };
}

export interface MsdaInput {
  /** [B, Lq, E], without position. */
  query: tf.Tensor3D;
  queryPos?: tf.Tensor3D | null;
  /** [B, S, E]; the query itself when absent (encoder self-attention). */
  value?: tf.Tensor3D | null;
  /** [B, S, 1]: 1 for real pixels, 0 for padding (APE's key_padding_mask inverted). */
  valueKeep?: tf.Tensor3D | null;
  frame: SamplingFrame;
  spatialShapes: SpatialShapes;
  /** Inference: project the value this many tokens at a time (default: all at once). */
  chunkRows?: number;
}

/** Deformable DETR's MultiScaleDeformableAttention (APE's version, batch first), identity included. */
export class MultiScaleDeformableAttention extends Module {
  readonly samplingOffsets: Linear;
  readonly attentionWeights: Linear;
  readonly valueProj: Linear;
  readonly outputProj: Linear;
  readonly headDim: number;

  constructor(
    readonly embedDim: number,
    readonly numHeads: number,
    readonly numLevels: number,
    readonly numPoints: number,
    rng: Rng,
  ) {
    super();
    if (embedDim % numHeads !== 0)
      throw new Error(`MultiScaleDeformableAttention: ${embedDim} is not divisible by ${numHeads} heads`);
    this.headDim = embedDim / numHeads;
    const offsets = numHeads * numLevels * numPoints * 2;
    this.samplingOffsets = this.child(
      'sampling_offsets',
      new Linear(embedDim, offsets, rng, {
        weightInit: init.zeros(),
        biasInit: polarGridInit(numHeads, numLevels, numPoints),
      }),
    );
    this.attentionWeights = this.child(
      'attention_weights',
      new Linear(embedDim, numHeads * numLevels * numPoints, rng, { weightInit: init.zeros(), biasInit: init.zeros() }),
    );
    this.valueProj = this.child(
      'value_proj',
      new Linear(embedDim, embedDim, rng, { weightInit: init.xavierUniform(), biasInit: init.zeros() }),
    );
    this.outputProj = this.child(
      'output_proj',
      new Linear(embedDim, embedDim, rng, { weightInit: init.xavierUniform(), biasInit: init.zeros() }),
    );
  }

  forward(input: MsdaInput): tf.Tensor3D {
    return tf.tidy(() => {
      const value = this.projectValue(input.value ?? input.query, input.valueKeep ?? null, input.chunkRows);
      return this.attend(input.query, input.queryPos ?? null, value, input.frame, input.spatialShapes);
    });
  }

  /** value_proj over [B, S, E] with padding tokens zeroed (keep [B, S, 1]); chunkRows tokens at a time. */
  projectValue(valueIn: tf.Tensor3D, keep: tf.Tensor3D | null, chunkRows = Infinity): tf.Tensor3D {
    const s = valueIn.shape[1];
    const project = (x: tf.Tensor3D, k: tf.Tensor3D | null): tf.Tensor => {
      const value = this.valueProj.forward(x);
      return k ? tf.mul(value, k) : value;
    };
    if (s <= chunkRows) return tf.tidy(() => project(valueIn, keep)) as tf.Tensor3D;
    const [value] = mapRowChunks(s, chunkRows, 1, (start, size) => [
      project(sliceRows(valueIn, start, size), keep ? sliceRows(keep, start, size) : null),
    ]);
    return value as tf.Tensor3D;
  }

  /**
   * The attention of queries [B, Lq, E] (frame made for these Lq queries) over an already
   * projected value [B, S, E], plus the identity. Each query's output depends on that query alone.
   */
  attend(
    query: tf.Tensor3D,
    queryPos: tf.Tensor3D | null,
    value: tf.Tensor3D,
    frame: SamplingFrame,
    spatialShapes: SpatialShapes,
  ): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, lq, e] = query.shape;
      const { numHeads: h, numLevels: l, numPoints: p } = this;
      if (spatialShapes.length !== l)
        throw new Error(`MultiScaleDeformableAttention: ${spatialShapes.length} levels given, built for ${l}`);
      const s = value.shape[1];
      const total = spatialShapes.reduce((acc, [hh, ww]) => acc + hh * ww, 0);
      if (total !== s)
        throw new Error(`MultiScaleDeformableAttention: value has ${s} tokens, spatial shapes give ${total}`);
      const q = queryPos ? tf.add(query, queryPos) : query;
      const flatQ = tf.reshape(q, [b * lq, e]);
      const offsets = tf.reshape(this.samplingOffsets.forward(flatQ), [b * lq, h, l, p * 2]);
      const locations = tf.add(frame.base, tf.mul(offsets, frame.scale));
      const weights = tf.softmax(tf.reshape(this.attentionWeights.forward(flatQ), [b * lq, h, l * p]));
      const sampled = msDeformAttn(
        tf.reshape(value, [b, s, h, this.headDim]) as tf.Tensor4D,
        spatialShapes.map(([hh, ww]) => [hh, ww] as [number, number]),
        tf.reshape(locations, [b, lq, h, l, p * 2]),
        tf.reshape(weights, [b, lq, h, l, p]) as tf.Tensor5D,
      );
      return tf.add(query, this.outputProj.forward(sampled)) as tf.Tensor3D;
    });
  }
}

/** Deformable DETR's offset-bias init: head k points along angle 2πk/H, point i at distance i+1. */
function polarGridInit(heads: number, levels: number, points: number): Initializer {
  return () => {
    const values = new Float32Array(heads * levels * points * 2);
    for (let k = 0; k < heads; k++) {
      const theta = (k * 2 * Math.PI) / heads;
      const c = Math.cos(theta);
      const s = Math.sin(theta);
      const m = Math.max(Math.abs(c), Math.abs(s));
      for (let l = 0; l < levels; l++) {
        for (let i = 0; i < points; i++) {
          const o = ((k * levels + l) * points + i) * 2;
          values[o] = (c / m) * (i + 1);
          values[o + 1] = (s / m) * (i + 1);
        }
      }
    }
    return tf.tensor1d(values);
  };
}
