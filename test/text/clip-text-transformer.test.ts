import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tf, initEngine } from '../../src/engine/engine.js';
import '../../src/engine/gradients-node.js';
import {
  ClipTextEncoder,
  causalMask,
  tinyTextConfig,
  type ClipTextConfig,
} from '../../src/text/clip-text-transformer.js';
import { Rng } from '../../src/util/random.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

before(async () => {
  await initEngine({ backend: 'wasm' });
});

const small: ClipTextConfig = {
  vocabSize: 50,
  contextLength: 8,
  width: 16,
  heads: 2,
  layers: 2,
  mlpRatio: 4,
  embedDim: 12,
  layerNormEps: 1e-5,
};
// sot = 48, eot = 49 (the largest id, as in CLIP).
const ids = [
  [48, 3, 4, 49, 0, 0, 0, 0],
  [48, 7, 8, 9, 10, 49, 0, 0],
];

test('text tower parameter names and shapes are the released ones (fixture manifest)', () => {
  const manifest = JSON.parse(readFileSync(`${root}../shared/fixtures/ape-reference/manifest.json`, 'utf8')) as {
    modules: { name: string; keys: { key: string; shape: number[] }[] }[];
  };
  const keys = manifest.modules.find((m) => m.name === 'text')!.keys;
  const enc = new ClipTextEncoder(
    {
      vocabSize: 49408,
      contextLength: 77,
      width: 32,
      heads: 4,
      layers: 2,
      mlpRatio: 4,
      embedDim: 48,
      layerNormEps: 1e-5,
    },
    new Rng(1),
  );
  const params = enc.namedParameters();
  const expected = keys
    .map((k) => k.key.slice('model_vision.model_language.net.'.length))
    .filter((k) => k !== 'logit_scale');
  assert.deepEqual([...params.keys()].sort(), expected.sort());
  for (const { key, shape } of keys) {
    const p = params.get(key.slice('model_vision.model_language.net.'.length));
    if (!p) continue;
    const linear = shape.length === 2 && /(\.|_)weight$/.test(key) && !key.includes('embedding');
    assert.deepEqual(p.shape, linear ? [shape[1], shape[0]] : shape, key);
  }
  enc.dispose();
});

test('causal mask: 0 on/below the diagonal, large negative above', () => {
  assert.deepEqual(causalMask(3).arraySync(), [
    [0, -1e9, -1e9],
    [0, 0, -1e9],
    [0, 0, 0],
  ]);
});

test('end-of-text pooling, mean pooling, attention mask and sequence trimming agree', () => {
  const enc = new ClipTextEncoder(small, new Rng(2));
  const full = enc.forward(ids, { returnHidden: true, fullLength: true });
  assert.deepEqual(full.endTokenIdx, [3, 5]);
  assert.deepEqual(full.attentionMask.arraySync(), [
    [1, 1, 1, 1, 0, 0, 0, 0],
    [1, 1, 1, 1, 1, 1, 0, 0],
  ]);
  const hidden = full.lastHiddenState!.arraySync();
  const emb = full.embeddings.arraySync();
  full.endTokenIdx.forEach((e, r) => hidden[r]![e]!.forEach((v, k) => assert.ok(Math.abs(v - emb[r]![k]!) < 1e-5)));

  const mean = enc.forward(ids, { pooling: 'mean' }).embeddings.arraySync();
  full.endTokenIdx.forEach((e, r) => {
    for (let k = 0; k < small.embedDim; k++) {
      let s = 0;
      for (let j = 0; j <= e; j++) s += hidden[r]![j]![k]!;
      assert.ok(Math.abs(s / (e + 1) - mean[r]![k]!) < 1e-5);
    }
  });

  const trimmed = enc.forward(ids, { returnHidden: true });
  assert.deepEqual(trimmed.attentionMask.shape, [2, 6]);
  const th = trimmed.lastHiddenState!.arraySync();
  for (let r = 0; r < 2; r++)
    for (let j = 0; j < 6; j++) th[r]![j]!.forEach((v, k) => assert.ok(Math.abs(v - hidden[r]![j]![k]!) < 1e-5));
  enc.dispose();
});

test('causality: later tokens never change earlier states', () => {
  const enc = new ClipTextEncoder(small, new Rng(3));
  const a = enc
    .forward([[48, 3, 4, 5, 49, 0, 0, 0]], { returnHidden: true, fullLength: true })
    .lastHiddenState!.arraySync()[0]!;
  const b = enc
    .forward([[48, 3, 4, 9, 49, 0, 0, 0]], { returnHidden: true, fullLength: true })
    .lastHiddenState!.arraySync()[0]!;
  for (let j = 0; j < 3; j++) assert.deepEqual(a[j], b[j]);
  assert.notDeepEqual(a[3], b[3]);
  enc.dispose();
});

test('bad ids are rejected with the row and position', () => {
  const enc = new ClipTextEncoder(small, new Rng(4));
  assert.throws(() => enc.forward([[48, 49]]), /row 0 has 2 ids, expected 8/);
  assert.throws(() => enc.forward([[48, 3, 77, 49, 0, 0, 0, 0]]), /id 77 \(row 0, position 2\) outside 0\.\.49/);
  assert.throws(() => new ClipTextEncoder({ ...small, heads: 3 }, new Rng(5)), /not divisible/);
  enc.dispose();
});

test('gradients reach every parameter of a tiny text tower', () => {
  const enc = new ClipTextEncoder(tinyTextConfig(60, 8, 32), new Rng(6));
  const rows = [
    [58, 1, 2, 59, 0, 0, 0, 0],
    [58, 5, 59, 0, 0, 0, 0, 0],
  ];
  const { grads } = tf.variableGrads(
    () => tf.sum(tf.square(enc.forward(rows).embeddings)) as tf.Scalar,
    enc.trainableVariables(),
  );
  for (const [name, v] of enc.namedParameters()) {
    const g = grads[v.name];
    assert.ok(g, `no gradient for ${name}`);
    assert.ok(tf.norm(g).dataSync()[0]! > 0, `${name}: zero gradient`);
  }
  enc.dispose();
});
