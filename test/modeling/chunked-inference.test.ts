import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import {
  ApeNetwork,
  type ApeRawOutput,
  type ForwardTimings,
  type FusionMode,
  type ModelBatch,
  type PromptInput,
} from '../../src/modeling/ape-network.js';
import { tinyConfig } from '../../src/modeling/config.js';
import { mapRowChunks, mapRows } from '../../src/modeling/row-chunks.js';
import { WordTokenizer } from '../../src/text/word-tokenizer.js';
import { Rng } from '../../src/util/random.js';

// The inference path splits token-wise work into row chunks so that 1024x1024 inputs fit the
// wasm heap. Chunked and unchunked forwards of the tiny preset must give the same outputs.

let net: ApeNetwork;

before(async () => {
  await initEngine({ backend: 'wasm' });
  const config = tinyConfig(512);
  net = new ApeNetwork(config, WordTokenizer.hashing(512, config.text.encoder.contextLength), 3);
  // APE zero-initialises the sampling offsets, attention weights and last box layers; spread
  // every weight so that each query samples its own places and the outputs vary.
  for (const v of net.namedParameters().values()) {
    v.assign(tf.tidy(() => tf.add(v, tf.randomNormal(v.shape, 0, 0.02, 'float32', v.size % 1000))));
  }
});
after(() => net.dispose());

function batchOf(sizes: [number, number][], seed: number): ModelBatch {
  const rng = new Rng(seed);
  const data = Float32Array.from({ length: sizes.length * 256 * 256 * 3 }, () => rng.uniform(0, 255));
  return { images: tf.tensor4d(data, [sizes.length, 256, 256, 3]), sizes };
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  const x = a.dataSync();
  const y = b.dataSync();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

function assertSameOutputs(chunked: ApeRawOutput, whole: ApeRawOutput): void {
  assert.deepEqual(
    chunked.encoder.selected.map((s) => Array.from(s)),
    whole.encoder.selected.map((s) => Array.from(s)),
  );
  const pairs: [string, tf.Tensor, tf.Tensor][] = [
    ['encoder.logits', chunked.encoder.logits, whole.encoder.logits],
    ['encoder.boxes', chunked.encoder.boxes, whole.encoder.boxes],
    ['promptVectors', chunked.promptVectors, whole.promptVectors],
  ];
  chunked.layers.forEach((l, i) => {
    const w = whole.layers[i]!;
    pairs.push([`layers.${i}.logits`, l.logits, w.logits], [`layers.${i}.boxes`, l.boxes, w.boxes]);
    if (l.masks || w.masks) pairs.push([`layers.${i}.masks`, l.masks!, w.masks!]);
  });
  for (const [name, a, b] of pairs) {
    const d = maxAbsDiff(a, b);
    if (process.env.APE_SHOW_DIFFS) console.log(name, d);
    assert.ok(d <= 1e-5, `${name}: chunked and unchunked differ by ${d}`);
  }
}

test('row chunks: each chunk in its own scope, outputs concatenated in order; a single chunk runs fn once on the whole', () => {
  const x = tf.tensor3d(
    Float32Array.from({ length: 2 * 7 * 3 }, (_, i) => i),
    [2, 7, 3],
  );
  const before = tf.memory().numTensors;
  const starts: number[] = [];
  const [sq, sum] = mapRowChunks(7, 3, 1, (start, size) => {
    starts.push(start, size);
    const part = tf.slice(x, [0, start, 0], [2, size, 3]);
    return [tf.square(part), tf.sum(part, -1, true)];
  });
  assert.deepEqual(starts, [0, 3, 3, 3, 6, 1]);
  assert.deepEqual(
    Array.from(sq!.dataSync()),
    Array.from(x.dataSync(), (v) => v * v),
  );
  assert.deepEqual(sum!.shape, [2, 7, 1]);
  assert.deepEqual(
    Array.from(sum!.dataSync()),
    Array.from({ length: 14 }, (_, r) => 9 * r + 3),
  );
  assert.equal(tf.memory().numTensors, before + 2);
  tf.dispose([sq!, sum!]);

  const rows = tf.tensor2d([
    [1, 2],
    [3, 4],
    [5, 6],
    [7, 8],
    [9, 10],
  ]);
  const doubled = mapRows(rows, 2, (r) => tf.mul(r, 2));
  assert.deepEqual(doubled.arraySync(), [
    [2, 4],
    [6, 8],
    [10, 12],
    [14, 16],
    [18, 20],
  ]);
  const calls: number[] = [];
  const whole = mapRows(rows, 5, (r) => {
    calls.push(r.shape[0]);
    return tf.neg(r);
  });
  assert.deepEqual(calls, [5]);
  tf.dispose([rows, doubled, whole, x]);
  assert.equal(tf.memory().numTensors, before - 1);
});

test('chunked inference equals the unchunked forward (sentence fusion, padded batch of two, all layers and masks)', () => {
  const batch = batchOf(
    [
      [256, 256],
      [200, 152],
    ],
    5,
  );
  const prompts = { vocabulary: ['cat', 'dog', 'sky'], sentences: ['the red car on the left', 'a person'] };
  const options = { layers: 'all', masks: 'all' } as const;
  const whole = net.forward(batch, prompts, { ...options, chunkRows: Infinity });
  const before = tf.memory().numTensors;
  // 1344 tokens in chunks of 100 (the last one 44 long); the fusion and every encoder layer split.
  const timings: ForwardTimings = {};
  const chunked = net.forward(batch, prompts, { ...options, chunkRows: 100, timings });
  assertSameOutputs(chunked, whole);
  for (const phase of ['backbone', 'prompts', 'encoder', 'decoder', 'heads'] as const)
    assert.ok(timings[phase]! >= 0, phase);
  chunked.dispose();
  assert.equal(tf.memory().numTensors, before);
  whole.dispose();
  batch.images.dispose();
});

test('chunked inference equals the unchunked forward (word-level fusion; vocabulary only, the zero-token path)', () => {
  const batch = batchOf([[256, 256]], 9);
  const cases: [PromptInput, FusionMode][] = [
    [{ vocabulary: ['cat', 'dog'], sentences: ['a red car'] }, 'word'],
    [{ vocabulary: ['cat', 'dog', 'sky', 'grass'] }, 'sentence'],
  ];
  for (const [prompts, fusion] of cases) {
    const whole = net.forward(batch, prompts, { fusion, chunkRows: Infinity });
    const chunked = net.forward(batch, prompts, { fusion, chunkRows: 257 });
    assertSameOutputs(chunked, whole);
    // The default (8192 rows) does not split the tiny preset's 1344 tokens: the same path.
    const byDefault = net.forward(batch, prompts, { fusion });
    assertSameOutputs(byDefault, whole);
    for (const o of [chunked, whole, byDefault]) o.dispose();
  }
  batch.images.dispose();
});
