import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import '../../src/engine/gradients-node.js';
import { ApeNetwork, type ModelBatch } from '../../src/modeling/ape-network.js';
import { WordTokenizer } from '../../src/text/word-tokenizer.js';
import { Rng } from '../../src/util/random.js';
import { microConfig } from './micro-config.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

function network(seed = 1): ApeNetwork {
  const cfg = microConfig();
  return new ApeNetwork(cfg, WordTokenizer.hashing(cfg.text.encoder.vocabSize, cfg.text.encoder.contextLength), seed);
}

function batchOf(sizes: [number, number][], seed = 7): ModelBatch {
  const rng = new Rng(seed);
  const n = sizes.length;
  const data = Float32Array.from({ length: n * 64 * 64 * 3 }, () => rng.uniform(0, 255));
  return { images: tf.tensor4d(data, [n, 64, 64, 3]), sizes };
}

const column = (t: tf.Tensor3D, p: number) =>
  tf.tidy(() => tf.squeeze(tf.slice(t, [0, 0, p], [-1, -1, 1]), [2]).arraySync() as number[][]);

test('training forward: per-layer logits [B,Q,P], boxes in [0,1], masks, encoder proposals and the picked queries', () => {
  const net = network();
  const batch = batchOf([
    [64, 64],
    [40, 56],
  ]);
  const out = net.forward(
    batch,
    { vocabulary: ['cat', 'dog'], sentences: ['a red car'] },
    { training: true, masks: 'all' },
  );
  const q = 12;
  assert.equal(out.layers.length, 2);
  for (const [i, l] of out.layers.entries()) {
    assert.equal(l.index, i);
    assert.deepEqual(l.logits.shape, [2, q, 3]);
    assert.deepEqual(l.boxes.shape, [2, q, 4]);
    assert.deepEqual(l.masks!.shape, [2, q, 8, 8]);
    const b = l.boxes.dataSync();
    assert.ok(b.every((v) => v >= 0 && v <= 1));
  }
  // Tokens: 8x8 + 4x4 + 2x2 at strides 8, 16, 32.
  assert.deepEqual(out.spatialShapes, [
    [8, 8],
    [4, 4],
    [2, 2],
  ]);
  assert.deepEqual(out.levelStart, [0, 64, 80]);
  assert.deepEqual(out.encoder.logits.shape, [2, 84, 1]);
  assert.deepEqual(out.encoder.boxes.shape, [2, 84, 4]);
  assert.equal(out.encoder.selected.length, 2);
  for (const picks of out.encoder.selected) {
    assert.equal(picks.length, q);
    assert.equal(new Set(picks).size, q);
  }
  // Image 1 is padded: its anchors outside the valid 40x56 are unusable.
  const valid = out.encoder.anchors.valid;
  assert.equal(valid[84 + 7 * 8 + 7], 0);
  assert.equal(out.maskStride, 8);
  assert.deepEqual(
    out.prompts.map((p) => [p.text, p.kind, p.index]),
    [
      ['cat', 'vocabulary', 0],
      ['dog', 'vocabulary', 1],
      ['a red car', 'sentence', 2],
    ],
  );
  // Layer 1 starts from layer 0's refined boxes.
  assert.deepEqual(Array.from(out.references[1]!), Array.from(out.layers[0]!.boxes.dataSync()));
  out.dispose();
  batch.images.dispose();
});

test('a backward pass from the outputs reaches every trainable parameter with a finite, non-zero gradient', () => {
  const net = network(2);
  // Zero-initialised layers (last box layers, offset/weight projections) make some gradients
  // exactly zero at step 0 by design; a little noise shows every parameter is reached.
  for (const v of net.trainableVariables())
    v.assign(tf.tidy(() => tf.add(v, tf.randomNormal(v.shape, 0, 0.02, 'float32', 9))));
  const batch = batchOf([
    [64, 64],
    [48, 64],
  ]);
  const rng = new Rng(3);
  const vars = net.trainableVariables();
  const { grads, value } = tf.variableGrads(() => {
    const out = net.forward(
      batch,
      { vocabulary: ['cat', 'dog'], sentences: ['a red car', 'the sky'] },
      { training: true, rng },
    );
    // Fixed random weights over every output, so that no normalisation makes the sum constant.
    const weigh = (t: tf.Tensor, seed: number) => tf.sum(tf.mul(t, tf.randomUniform(t.shape, -1, 1, 'float32', seed)));
    const parts = out.layers.flatMap((l, i) => [
      weigh(l.logits, 10 + i),
      weigh(l.boxes, 20 + i),
      ...(l.masks ? [weigh(l.masks, 30 + i)] : []),
    ]);
    parts.push(weigh(out.encoder.logits, 40), weigh(out.encoder.boxes, 41));
    return parts.reduce((a, b) => tf.add(a, b)) as tf.Scalar;
  }, vars);
  assert.ok(Number.isFinite(value.dataSync()[0]!));
  const names = new Map([...net.namedParameters()].map(([n, v]) => [v.name, n]));
  const problems: string[] = [];
  for (const v of vars) {
    const g = grads[v.name];
    const name = names.get(v.name)!;
    if (!g) {
      problems.push(`${name}: no gradient`);
      continue;
    }
    const d = g.dataSync();
    if (!d.every(Number.isFinite)) problems.push(`${name}: non-finite gradient`);
    else if (!d.some((x) => x !== 0)) problems.push(`${name}: zero gradient`);
  }
  assert.deepEqual(problems, []);
  assert.ok(vars.length > 100);
  // The frozen zero token is not trainable.
  assert.ok(!vars.includes(net.namePromptFusionFeature));
  tf.dispose(Object.values(grads));
  batch.images.dispose();
});

test('independence: a vocabulary prompt scores the same alone, among 1000 others and in any order', () => {
  const net = network(4);
  const batch = batchOf([[64, 64]]);
  const others = Array.from({ length: 1000 }, (_, i) => `thing${i}`);
  const alone = net.forward(batch, { vocabulary: ['zebra'] });
  const a = column(alone.layers[0]!.logits, 0);
  const crowd = net.forward(batch, { vocabulary: [...others.slice(0, 500), 'zebra', ...others.slice(500)] });
  const b = column(crowd.layers[0]!.logits, 500);
  const reversed = [...others].reverse();
  const shuffled = net.forward(batch, { vocabulary: ['zebra', ...reversed] });
  const c = column(shuffled.layers[0]!.logits, 0);
  // And every other prompt keeps its score when the list is reordered.
  const d = column(crowd.layers[0]!.logits, 0); // thing0
  const e = column(shuffled.layers[0]!.logits, 1000); // thing0 is last in the reversed list
  const maxDiff = (x: number[][], y: number[][]) =>
    Math.max(...x.flatMap((r, i) => r.map((v, j) => Math.abs(v - y[i]![j]!))));
  assert.ok(maxDiff(a, b) < 1e-4, `alone vs crowd ${maxDiff(a, b)}`);
  assert.ok(maxDiff(a, c) < 1e-4, `alone vs reordered ${maxDiff(a, c)}`);
  assert.ok(maxDiff(d, e) < 1e-4, `reordered ${maxDiff(d, e)}`);
  // Boxes and proposals do not depend on the vocabulary at all.
  assert.deepEqual(
    alone.encoder.selected.map((s) => Array.from(s)),
    crowd.encoder.selected.map((s) => Array.from(s)),
  );
  for (const o of [alone, crowd, shuffled]) o.dispose();
  batch.images.dispose();
});

test('fusion: vocabulary embeddings pass through unchanged and leave the image side alone; sentences are fused and change it', () => {
  const net = network(5);
  const batch = batchOf([[64, 64]]);
  const v1 = net.forward(batch, { vocabulary: ['cat', 'dog'] });
  const v2 = net.forward(batch, { vocabulary: ['a', 'b', 'c', 'horse'] });
  // The encoder output (seen through the proposal logits) is the same whatever the vocabulary.
  assert.deepEqual(Array.from(v1.encoder.logits.dataSync()), Array.from(v2.encoder.logits.dataSync()));
  // The classifier compares queries with the raw embeddings of vocabulary prompts.
  const raw = net.encodePrompts(['cat', 'dog']);
  assert.deepEqual(v1.promptVectors.shape, [2, 24]);
  assert.deepEqual(Array.from(v1.promptVectors.dataSync()), Array.from(raw.dataSync()));

  const s = net.forward(batch, { vocabulary: ['cat', 'dog'], sentences: ['a cat on a mat'] });
  const encDiff = tf.tidy(() => tf.max(tf.abs(tf.sub(s.encoder.logits, v1.encoder.logits))).dataSync()[0]!);
  assert.ok(encDiff > 1e-4, 'sentences change the image side');
  assert.deepEqual(s.promptVectors.shape, [1, 3, 24]);
  const vectors = s.promptVectors.arraySync() as number[][][];
  const rawSentence = net.encodePrompts(['a cat on a mat']).arraySync()[0]!;
  assert.deepEqual(vectors[0]!.slice(0, 2), raw.arraySync());
  const sentenceDiff = Math.max(...vectors[0]![2]!.map((x, i) => Math.abs(x - rawSentence[i]!)));
  assert.ok(sentenceDiff > 1e-3, 'the sentence embedding is updated by the fusion');
  for (const o of [v1, v2, s]) o.dispose();
  raw.dispose();
  batch.images.dispose();
});

test('a batch gives each image the same outputs as running it alone (padding handled per image)', () => {
  const net = network(6);
  const both = batchOf(
    [
      [64, 64],
      [40, 48],
    ],
    11,
  );
  const second: ModelBatch = {
    images: tf.slice(both.images, [1, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D,
    sizes: [[40, 48]],
  };
  const prompts = { vocabulary: ['cat'], sentences: ['a dog'] };
  const a = net.forward(both, prompts);
  const b = net.forward(second, prompts);
  const la = a.layers[0]!;
  const lb = b.layers[0]!;
  const diff = (x: tf.Tensor, y: tf.Tensor) =>
    tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(x, [1], [1]), y))).dataSync()[0]!);
  assert.ok(diff(la.logits, lb.logits) < 1e-3, `logits ${diff(la.logits, lb.logits)}`);
  assert.ok(diff(la.boxes, lb.boxes) < 1e-4);
  assert.ok(diff(la.masks!, lb.masks!) < 1e-3);
  a.dispose();
  b.dispose();
  tf.dispose([both.images, second.images]);
});

test('word-level fusion (the GLIP-style baseline) runs every token through the fusion', () => {
  const net = network(7);
  const batch = batchOf([[64, 64]]);
  const out = net.forward(batch, { vocabulary: ['cat', 'dog'], sentences: ['a red car'] }, { fusion: 'word' });
  assert.deepEqual(out.layers[0]!.logits.shape, [1, 12, 3]);
  assert.deepEqual(out.promptVectors.shape, [1, 3, 24]);
  // Vocabulary prompts are fused too in this mode, so their vectors differ from the raw embeddings.
  const raw = net.encodePrompts(['cat']).dataSync();
  const fused = (out.promptVectors.arraySync() as number[][][])[0]![0]!;
  assert.ok(Math.max(...fused.map((x, i) => Math.abs(x - raw[i]!))) > 1e-3);
  out.dispose();
  batch.images.dispose();
});

test('forward leaves no tensors behind', () => {
  const net = network(8);
  const batch = batchOf([[64, 64]]);
  net.forward(batch, { vocabulary: ['cat'], sentences: ['a dog'] }).dispose();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 2; i++) net.forward(batch, { vocabulary: ['cat'], sentences: ['a dog'] }).dispose();
  net.forward(batch, { vocabulary: ['cat'] }, { fusion: 'word' }).dispose();
  net.forward(batch, { vocabulary: ['cat'] }).dispose();
  assert.equal(tf.memory().numTensors, before);
  batch.images.dispose();
});

test('bad input is refused with a clear message', () => {
  const net = network();
  const batch = batchOf([[64, 64]]);
  assert.throws(() => net.forward(batch, {}), /no prompts/);
  assert.throws(() => net.forward(batch, { vocabulary: [''] }), /vocabulary\[0\] is empty/);
  assert.throws(() => net.forward({ images: batch.images, sizes: [[70, 64]] }, { vocabulary: ['a'] }), /does not fit/);
  const odd = tf.zeros([1, 60, 64, 3]) as tf.Tensor4D;
  assert.throws(
    () => net.forward({ images: odd, sizes: [[60, 64]] }, { vocabulary: ['a'] }),
    /multiple of the coarsest stride 32/,
  );
  const cfg = microConfig();
  assert.throws(() => new ApeNetwork(cfg, WordTokenizer.hashing(100, 8)), /tokenizer has 100 ids/);
  assert.throws(
    () => new ApeNetwork({ ...cfg, transformer: { ...cfg.transformer, numLevels: 4 } }, WordTokenizer.hashing(260, 8)),
    /numLevels/,
  );
  tf.dispose([batch.images, odd]);
});
