import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf, initEngine } from '../../src/engine/engine.js';
import { Eva02Vit } from '../../src/modeling/backbone/eva02-vit.js';
import { visionRopeTables } from '../../src/modeling/backbone/rope.js';
import { loadReleasedWeights } from '../../src/convert/released-mapping.js';
import { Rng } from '../../src/util/random.js';
import { fixtureCases, fixtureCheckpoint, fixtureVitConfig, maxAbsDiff, tolerance } from './towers-fixture.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

test('EVA-02 ViT reproduces APE: patch_embed, pos_embed_resized, block_in, block_out.0-3, last_feat', async () => {
  const prefix = 'model_vision.backbone.net.';
  const weights = await fixtureCheckpoint(prefix);
  const vit = new Eva02Vit(fixtureVitConfig(), new Rng(1));
  const report = loadReleasedWeights(vit, weights, { prefix });
  assert.equal(report.loaded.length, vit.namedParameters().size);
  // Only the RoPE buffers are left over; they are recomputed, and must equal APE's.
  assert.ok(
    report.unused.every((k) => k.includes('rope')),
    report.unused.join(', '),
  );
  for (const [name, side] of [
    ['rope_win', 2],
    ['rope_glb', 4],
  ] as const) {
    const tables = visionRopeTables(side, side, { headDim: 16, ptSeqLen: 16, interpolate: true });
    for (const part of ['cos', 'sin'] as const) {
      const ref = weights.get(`${prefix}${name}.freqs_${part}`)!.data as Float32Array;
      assert.ok(maxAbsDiff(tf.tensor1d(tables[part]), tf.tensor1d(ref)) < 1e-6, `${name}.freqs_${part}`);
    }
  }

  const cases = fixtureCases();
  const tol = tolerance('vit');
  const taps = new Map<string, tf.Tensor>();
  const input = tf.transpose(cases.tensor('vit.input'), [0, 2, 3, 1]) as tf.Tensor4D;
  const lastFeat = vit.forward(input, { intermediates: taps });
  const names = [
    'patch_embed',
    'pos_embed_resized',
    'block_in',
    'block_out.0',
    'block_out.1',
    'block_out.2',
    'block_out.3',
  ];
  assert.deepEqual([...taps.keys()], names);
  for (const name of names) {
    const diff = maxAbsDiff(taps.get(name)!, cases.tensor(`vit.${name}`));
    assert.ok(diff <= tol, `vit.${name}: max abs diff ${diff} > ${tol}`);
  }
  const diff = maxAbsDiff(tf.transpose(lastFeat, [0, 3, 1, 2]), cases.tensor('vit.last_feat'));
  assert.ok(diff <= tol, `vit.last_feat: max abs diff ${diff} > ${tol}`);
  vit.dispose();
});
