import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf, initEngine } from '../../src/engine/engine.js';
import { Eva02Vit } from '../../src/modeling/backbone/eva02-vit.js';
import { SimpleFeaturePyramid } from '../../src/modeling/backbone/simple-feature-pyramid.js';
import { loadReleasedWeights } from '../../src/convert/released-mapping.js';
import { Rng } from '../../src/util/random.js';
import {
  fixtureCases,
  fixtureCheckpoint,
  fixturePyramidConfig,
  fixtureVitConfig,
  maxAbsDiff,
  tolerance,
} from './towers-fixture.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

test('simple feature pyramid reproduces APE: p2..p6 from the ViT output', async () => {
  const weights = await fixtureCheckpoint('model_vision.backbone.');
  const vit = new Eva02Vit(fixtureVitConfig(), new Rng(1));
  loadReleasedWeights(vit, weights, { prefix: 'model_vision.backbone.net.' });
  const pyramid = new SimpleFeaturePyramid(fixturePyramidConfig(), new Rng(2));
  const report = loadReleasedWeights(pyramid, weights, { prefix: 'model_vision.backbone.' });
  assert.equal(report.loaded.length, 32);

  const cases = fixtureCases();
  const tol = tolerance('simple_feature_pyramid');
  const input = tf.transpose(cases.tensor('vit.input'), [0, 2, 3, 1]) as tf.Tensor4D;
  const levels = pyramid.forward(vit.forward(input));
  assert.deepEqual(Object.keys(levels), ['p2', 'p3', 'p4', 'p5', 'p6']);
  for (const [name, t] of Object.entries(levels)) {
    const diff = maxAbsDiff(tf.transpose(t, [0, 3, 1, 2]), cases.tensor(`vit.output.${name}`));
    assert.ok(diff <= tol, `vit.output.${name}: max abs diff ${diff} > ${tol}`);
  }
  vit.dispose();
  pyramid.dispose();
});
