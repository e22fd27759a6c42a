import { tf } from '../engine/engine.js';
import { CHUNK_VALUES, cellMaskProbabilities, type SemanticGeometry } from './semantic.js';
import { getOrThrow } from '../util/checked.js';

/**
 * The semantic threshold of the command line, the HTTP API and the page. With the shipped model
 * it leaves the example scenes' maps as they are (sky 52.5% -> 52.2% of scene-1 with all 14 names)
 * while `--vocab circle` alone labels 5.0% of scene-2 "circle" instead of 100% (docs/model.md).
 */
export const DEFAULT_SEMANTIC_THRESHOLD = 0.1;

/**
 * How sure the model is of a semantic label, as a score: for prompt c at a mask cell, the mean
 * of the queries' scores for c weighted by how much each query's mask covers the cell,
 * sum_q sigmoid(logit[q, c]) M[q] / sum_q M[q], in [0, 1] like an instance score. APE's own
 * background (a constant channel of 0.1 against the accumulated maps) cannot leave anything
 * unlabelled when there is one prompt: the softmax over prompts then gives it every query's whole
 * weight. Returned transposed like semanticAccumulator: [cells, count] for prompts start...
 */
export function semanticConfidence(
  logits: tf.Tensor2D,
  maskLogits: tf.Tensor2D,
): { source: (start: number, count: number) => tf.Tensor2D; dispose(): void } {
  const scores = tf.tidy(() => tf.sigmoid(logits) as tf.Tensor2D); // [Q, P]
  const masksT = cellMaskProbabilities(maskLogits);
  const confidence = scoreConfidence(scores, masksT);
  return { source: confidence.source, dispose: () => tf.dispose([scores, masksT, ...confidence.held]) };
}

/**
 * semanticConfidence from the scores (sigmoid of the logits) [Q, P] and the mask probabilities
 * per cell [cells, Q] (cellMaskProbabilities), both the caller's to keep and dispose.
 */
export function scoreConfidence(
  scores: tf.Tensor2D,
  masksT: tf.Tensor2D,
): { source: (start: number, count: number) => tf.Tensor2D; held: tf.Tensor[] } {
  const coverage = tf.tidy(() => tf.maximum(tf.sum(masksT, 1, true), 1e-6) as tf.Tensor2D); // [cells, 1]
  return {
    source: (start, count) =>
      tf.tidy(() => tf.div(tf.matMul(masksT, tf.slice(scores, [0, start], [-1, count])), coverage) as tf.Tensor2D),
    held: [coverage],
  };
}

/**
 * Sets to -1 (unlabelled) every pixel whose label's confidence at its nearest mask cell is under
 * `threshold`. Only the (cell, prompt) pairs the labels use are looked at, a chunk of prompts at a time.
 */
export function unlabelUnsure(
  labels: Int32Array,
  source: (start: number, count: number) => tf.Tensor2D,
  numPrompts: number,
  geometry: SemanticGeometry,
  threshold: number,
  chunkValues = CHUNK_VALUES,
): void {
  const { maskH: h, maskW: w, width, height, stride } = geometry;
  const cells = h * w;
  const nearest = (v: number, hi: number) => Math.min(Math.max(Math.round(v), 0), hi);
  const columns = Int32Array.from({ length: width }, (_, x) =>
    nearest(((x + 0.5) * geometry.resizedW) / width / stride - 0.5, w - 1),
  );
  const cellOf = new Int32Array(width * height);
  const wanted = new Map<number, number>(); // cell * P + prompt -> confidence (NaN until read)
  for (let y = 0; y < height; y++) {
    const row = nearest(((y + 0.5) * geometry.resizedH) / height / stride - 0.5, h - 1) * w;
    for (let x = 0; x < width; x++) {
      const label = labels[y * width + x]!;
      cellOf[y * width + x] = row + columns[x]!;
      if (label >= 0) wanted.set((row + columns[x]!) * numPrompts + label, NaN);
    }
  }
  if (wanted.size === 0) return;
  const chunk = Math.max(1, Math.floor(chunkValues / cells));
  const keys = [...wanted.keys()];
  for (let start = 0; start < numPrompts; start += chunk) {
    const count = Math.min(chunk, numPrompts - start);
    if (!keys.some((k) => k % numPrompts >= start && k % numPrompts < start + count)) continue;
    const maps = source(start, count);
    const values = maps.dataSync() as Float32Array;
    maps.dispose();
    for (const k of keys) {
      const prompt = k % numPrompts;
      if (prompt < start || prompt >= start + count) continue;
      wanted.set(k, values[Math.floor(k / numPrompts) * count + (prompt - start)]!);
    }
  }
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (label >= 0 && getOrThrow(wanted, cellOf[i]! * numPrompts + label, 'confidences read') < threshold)
      labels[i] = -1;
  }
}
