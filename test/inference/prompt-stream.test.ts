import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import { selectInstances } from '../../src/inference/instances.js';
import { InstanceStream } from '../../src/inference/instance-stream.js';
import { cellMaskProbabilities, semanticAccumulator, semanticLabels } from '../../src/inference/semantic.js';
import { SemanticStream } from '../../src/inference/semantic-stream.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

function random(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
}

/** Columns start .. start + count - 1 of a row-major [rows, total] array. */
function columns(values: Float32Array, rows: number, total: number, start: number, count: number): Float32Array {
  const out = new Float32Array(rows * count);
  for (let i = 0; i < rows; i++) out.set(values.subarray(i * total + start, i * total + start + count), i * count);
  return out;
}

test('instance stream: chunks of prompts give exactly the whole selection (NMS, top-k, ties by query then prompt)', () => {
  const rand = random(5);
  const q = 12;
  const p = 40;
  // Scores on a coarse grid (many exact ties across prompts and queries), overlapping boxes.
  const scores = Float32Array.from({ length: q * p }, () => Math.round(rand() * 20) / 20);
  const boxes = Float32Array.from({ length: q * 4 }, (_, i) => (i % 4 < 2 ? rand() * 20 : 25 + rand() * 20));
  for (const options of [
    { threshold: 0.3, nmsThreshold: 0.5, topK: 15 },
    { threshold: 0, nmsThreshold: 0.7, topK: 100 },
    { threshold: 0.9, nmsThreshold: 0.2, topK: 3 },
  ]) {
    const whole = selectInstances(scores, q, p, boxes, options);
    assert.ok(whole.length > 0);
    for (const chunk of [1, 7, 16, p]) {
      const stream = new InstanceStream(q, p, boxes, options);
      // The same with each prompt's best score given: prompts that cannot pass are skipped, nothing else changes.
      const skipping = new InstanceStream(q, p, boxes, options);
      for (let start = 0; start < p; start += chunk) {
        const count = Math.min(chunk, p - start);
        const values = columns(scores, q, p, start, count);
        stream.add(values, start, count);
        const best = Float32Array.from({ length: count }, (_, c) =>
          Math.max(...Array.from({ length: q }, (_, i) => values[i * count + c]!)),
        );
        skipping.add(values, start, count, best);
      }
      assert.deepEqual(stream.picks(), whole, `chunk ${chunk}, ${JSON.stringify(options)}`);
      assert.deepEqual(skipping.picks(), whole, `chunk ${chunk} with best scores, ${JSON.stringify(options)}`);
    }
  }
  assert.throws(
    () => new InstanceStream(q, p, boxes, { threshold: 0, nmsThreshold: 0.5, topK: 5 }).add(scores, 30, 20),
    /prompts 30..49 outside 0..39/,
  );
});

/** Labels of a stream fed `chunk` columns at a time. */
function streamLabels(
  scores: Float32Array,
  q: number,
  p: number,
  chunk: number,
  masks: tf.Tensor2D,
  geometry: Parameters<typeof semanticLabels>[2],
  temperature: number,
  background: number,
): { labels: Int32Array; kept: number } {
  const stream = new SemanticStream(q, temperature, background);
  for (let start = 0; start < p; start += chunk) {
    const count = Math.min(chunk, p - start);
    const values = columns(scores, q, p, start, count);
    const t = tf.tensor2d(values, [q, count]);
    stream.add(t, values, start, count);
    t.dispose();
  }
  const kept = stream.keptPrompts().length;
  const masksT = cellMaskProbabilities(masks);
  const labels = stream.labels(masksT, geometry, background, 0);
  masksT.dispose();
  return { labels, kept };
}

test('semantic stream: the labels of the whole accumulation, for any chunk size that is a multiple of 256, keeping at most Q / background prompts', () => {
  const rand = random(9);
  const q = 20;
  const p = 700;
  const h = 6;
  const w = 7;
  const geometry = { maskH: h, maskW: w, stride: 8, resizedW: 52, resizedH: 45, width: 70, height: 60 };
  // A few prompts score high on a few queries; the rest are low, as with a large vocabulary.
  const scores = Float32Array.from({ length: q * p }, () => (rand() < 0.01 ? 0.5 + rand() / 2 : rand() * 0.2));
  const maskLogits = Float32Array.from({ length: q * h * w }, () => rand() * 8 - 4);
  const masks = tf.tensor2d(maskLogits, [q, h * w]);
  const before = tf.memory().numTensors;
  for (const [temperature, background] of [
    [0.06, 0.1],
    [0.5, 0.02],
    [0.01, 0.1], // 1 / T beyond the fixed shift: the stable log-sum-exp path
  ] as const) {
    const logits = tf.tidy(() => tf.log(tf.div(tf.tensor2d(scores, [q, p]), tf.sub(1, tf.tensor2d(scores, [q, p])))));
    const reference = semanticAccumulator(logits as tf.Tensor2D, masks, temperature);
    const expected = semanticLabels(reference.source, p, geometry, background);
    reference.dispose();
    logits.dispose();
    const whole = streamLabels(scores, q, p, p, masks, geometry, temperature, background);
    assert.deepEqual(Array.from(whole.labels), Array.from(expected), `T ${temperature}`);
    assert.ok(new Set(expected).size > 2, 'several prompts label pixels');
    assert.ok(whole.kept <= q / background, `${whole.kept} kept`);
    for (const chunk of [256, 512]) {
      const chunked = streamLabels(scores, q, p, chunk, masks, geometry, temperature, background);
      assert.deepEqual(Array.from(chunked.labels), Array.from(whole.labels), `T ${temperature}, chunk ${chunk}`);
      assert.equal(chunked.kept, whole.kept);
    }
  }
  assert.equal(tf.memory().numTensors, before, 'no tensors leak');
  masks.dispose();
});
