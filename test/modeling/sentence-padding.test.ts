// Padded sentence rows (a sentence-count bucket's) are masked out of the fusion: they change
// nothing of the image side, of the real sentences or of the results.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import { ApeNetwork, type ModelBatch } from '../../src/modeling/ape-network.js';
import { VisionLanguageFusion } from '../../src/modeling/fusion/bi-attention.js';
import { padSentenceRows, sentenceBucket, sentenceKeepMask } from '../../src/modeling/sentence-buckets.js';
import { WordTokenizer } from '../../src/text/word-tokenizer.js';
import { Rng } from '../../src/util/random.js';
import { microConfig } from './micro-config.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

/** max |a - b| / max |b|. */
function relative(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! / tf.max(tf.abs(b)).dataSync()[0]!);
}

test('sentence buckets: 0, then powers of two; the mask keeps the real rows; padding repeats the last real row', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 8, 9, 16, 17].map(sentenceBucket), [0, 1, 2, 4, 4, 8, 8, 16, 16, 32]);
  assert.deepEqual(Array.from(sentenceKeepMask(3, 4)), [1, 1, 1, 0]);
  assert.deepEqual(Array.from(sentenceKeepMask(2, 2)), [1, 1]);
  assert.deepEqual(Array.from(padSentenceRows(Float32Array.from([1, 2, 3, 4]), 2, 4)), [1, 2, 3, 4, 3, 4, 3, 4]);
  assert.throws(() => sentenceBucket(-1), /a sentence count must be a whole number, got -1/);
  assert.throws(() => sentenceKeepMask(5, 4), /5 real sentences do not fit 4 rows/);
  assert.throws(() => padSentenceRows(new Float32Array(10), 2, 4), /10 values are not 1 to 4 rows of 2/);
});

test('fusion: a masked text token changes neither the visual tokens nor the other text tokens (batched, factored, chunked and per-head paths), even when its logits would set the global max', () => {
  // The micro preset's fusion options (stable 2-D softmax, both clamps) at other widths.
  const fusion = new VisionLanguageFusion({ ...microConfig().fusion!, vDim: 32, lDim: 48, embedDim: 64 }, new Rng(3));
  const v = tf.randomNormal([2, 50, 32], 0, 1, 'float32', 1) as tf.Tensor3D;
  const real = tf.randomNormal([2, 3, 48], 0, 1, 'float32', 2) as tf.Tensor3D;
  // A padding row far larger than the others: unmasked, its logits would dominate every softmax.
  const pad = tf.mul(tf.randomNormal([2, 1, 48], 0, 1, 'float32', 4), 50);
  const padded = tf.concat([real, pad], 1) as tf.Tensor3D;
  const keep = tf.tensor1d(sentenceKeepMask(3, 4));
  for (const [path, options] of [
    ['batched', { factored: false }],
    ['factored', { factored: true }],
    ['chunked', { chunkRows: 16, factored: false }],
    ['per-head', { perHead: true }],
  ] as const) {
    const want = fusion.forward(v, real, options);
    const got = fusion.forward(v, padded, { ...options, textKeep: keep });
    const gotL = tf.slice(got.l!, [0, 0, 0], [2, 3, 48]);
    assert.ok(relative(got.v, want.v) < 1e-6, `${path}: visual tokens ${relative(got.v, want.v)}`);
    assert.ok(relative(gotL, want.l!) < 1e-6, `${path}: text tokens ${relative(gotL, want.l!)}`);
    // Unmasked, the same row changes the image side: the comparison can fail.
    const open = fusion.forward(v, padded, options);
    assert.ok(relative(open.v, want.v) > 1e-3, `${path}: the padding row unmasked`);
    tf.dispose([want.v, want.l!, got.v, got.l!, gotL, open.v, open.l!]);
  }
  tf.dispose([v, real, pad, padded, keep]);
});

test('a masked padded sentence changes nothing: 3 sentences alone and padded to 4 give the same proposals, picks, logits, boxes and masks (padded batch of two)', () => {
  const cfg = microConfig();
  const net = new ApeNetwork(cfg, WordTokenizer.hashing(cfg.text.encoder.vocabSize, cfg.text.encoder.contextLength), 9);
  const rng = new Rng(5);
  const batch: ModelBatch = {
    images: tf.tensor4d(
      Float32Array.from({ length: 2 * 64 * 64 * 3 }, () => rng.uniform(0, 255)),
      [2, 64, 64, 3],
    ),
    sizes: [
      [64, 64],
      [40, 56],
    ],
  };
  const vocabulary = ['cat', 'dog'];
  const sentences = ['a red car', 'the dog on the left', 'a cat'];
  const options = { layers: 'all', masks: 'all' } as const;
  const exact = net.forward(batch, { vocabulary, sentences }, options);
  const padded = net.forward(
    batch,
    { vocabulary, sentences: [...sentences, 'a very different sentence'], paddedSentences: 1 },
    options,
  );
  const open = net.forward(batch, { vocabulary, sentences: [...sentences, 'a very different sentence'] }, options);
  try {
    assert.ok(relative(padded.encoder.logits, exact.encoder.logits) < 1e-6, 'proposal logits');
    assert.ok(relative(padded.encoder.boxes, exact.encoder.boxes) < 1e-6, 'proposal boxes');
    assert.deepEqual(
      padded.encoder.selected.map((s) => Array.from(s)),
      exact.encoder.selected.map((s) => Array.from(s)),
    );
    padded.layers.forEach((l, i) => {
      const e = exact.layers[i]!;
      // The 2 names and 3 real sentences: the first 5 columns; the padded one's is the last.
      const real = tf.slice(l.logits, [0, 0, 0], [-1, -1, 5]);
      assert.ok(relative(real, e.logits) < 1e-5, `layer ${i} logits ${relative(real, e.logits)}`);
      assert.ok(relative(l.boxes, e.boxes) < 1e-5, `layer ${i} boxes`);
      assert.ok(relative(l.masks!, e.masks!) < 1e-5, `layer ${i} masks`);
      real.dispose();
    });
    // Without the mask the fourth sentence changes the image side.
    assert.ok(relative(open.encoder.logits, exact.encoder.logits) > 1e-4);
    assert.throws(
      () => net.forward(batch, { vocabulary, sentences, paddedSentences: 3 }),
      /paddedSentences must be a whole number below the 3 sentences, got 3/,
    );
    assert.throws(
      () => net.forward(batch, { vocabulary, sentences, paddedSentences: 1 }, { fusion: 'word' }),
      /paddedSentences need sentence fusion without extraSentenceEmbeddings/,
    );
  } finally {
    for (const o of [exact, padded, open]) o.dispose();
    batch.images.dispose();
    net.dispose();
  }
});
