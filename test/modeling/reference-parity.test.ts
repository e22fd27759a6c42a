// The fusion block, the alignment head and the deformable-attention module against APE's own
// outputs (../shared/fixtures/ape-reference: random weights, APE-D options at small sizes).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import { loadReleasedWeights } from '../../src/convert/released-mapping.js';
import { boxSamplingFrame, pointSamplingFrame } from '../../src/modeling/deformable/ms-deform-attn-module.js';
import {
  fixtureAlign,
  fixtureCases,
  fixtureCheckpoint,
  fixtureFusion,
  fixtureMsda,
  maxAbsDiff,
  tolerance,
} from '../parity/towers-fixture.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

const cases = () => fixtureCases();

test('fusion: sentence tokens and visual tokens both match APE (BiAttentionBlock, stable 2-D softmax, gammas)', async () => {
  const m = fixtureFusion();
  loadReleasedWeights(m, await fixtureCheckpoint('model_vision.transformer.encoder.vl_layers.0.'), {
    prefix: 'model_vision.transformer.encoder.vl_layers.0.',
  });
  const c = cases();
  const tol = tolerance('fusion');
  const out = m.forward(c.tensor('fusion.v_in') as tf.Tensor3D, c.tensor('fusion.l_in') as tf.Tensor3D);
  assert.ok(
    maxAbsDiff(out.v, c.tensor('fusion.v_out')) <= tol,
    `v_out diff ${maxAbsDiff(out.v, c.tensor('fusion.v_out'))}`,
  );
  assert.ok(
    maxAbsDiff(out.l!, c.tensor('fusion.l_out')) <= tol,
    `l_out diff ${maxAbsDiff(out.l!, c.tensor('fusion.l_out'))}`,
  );
  // The default inference call here takes the factored path (4 heads x 5 tokens < 64): the
  // batched order must match APE as well.
  const batched = m.forward(c.tensor('fusion.v_in') as tf.Tensor3D, c.tensor('fusion.l_in') as tf.Tensor3D, {
    factored: false,
  });
  assert.ok(maxAbsDiff(batched.v, c.tensor('fusion.v_out')) <= tol);
  assert.ok(maxAbsDiff(batched.l!, c.tensor('fusion.l_out')) <= tol);
  // ... and so must its row-chunked form (84 visual tokens in chunks of 20).
  const chunked = m.forward(c.tensor('fusion.v_in') as tf.Tensor3D, c.tensor('fusion.l_in') as tf.Tensor3D, {
    factored: false,
    chunkRows: 20,
  });
  assert.ok(maxAbsDiff(chunked.v, c.tensor('fusion.v_out')) <= tol);
  assert.ok(maxAbsDiff(chunked.l!, c.tensor('fusion.l_out')) <= tol);
  // The one-head-at-a-time inference path (large maps) gives the same numbers.
  const perHead = m.forward(c.tensor('fusion.v_in') as tf.Tensor3D, c.tensor('fusion.l_in') as tf.Tensor3D, {
    perHead: true,
  });
  assert.ok(maxAbsDiff(perHead.v, c.tensor('fusion.v_out')) <= tol);
  assert.ok(maxAbsDiff(perHead.l!, c.tensor('fusion.l_out')) <= tol);
  const visionOnly = m.forward(c.tensor('fusion.v_in') as tf.Tensor3D, c.tensor('fusion.l_in') as tf.Tensor3D, {
    perHead: true,
    needLanguage: false,
  });
  assert.ok(maxAbsDiff(visionOnly.v, c.tensor('fusion.v_out')) <= tol);
  const vIn = c.tensor('fusion.v_in') as tf.Tensor3D;
  const lIn = c.tensor('fusion.l_in') as tf.Tensor3D;
  const before = tf.memory().numTensors;
  const again = m.forward(vIn, lIn, { perHead: true });
  tf.dispose([again.v, again.l!]);
  assert.equal(tf.memory().numTensors, before, 'the per-head path leaves nothing behind');
});

test('fusion: the zero token (vocabulary prompts) matches APE on both sides, and the vision-only shortcut gives the same pixels', async () => {
  const m = fixtureFusion();
  const ckpt = await fixtureCheckpoint('model_vision.');
  loadReleasedWeights(m, ckpt, { prefix: 'model_vision.transformer.encoder.vl_layers.0.', strict: true });
  const c = cases();
  const tol = tolerance('fusion');
  const zero = ckpt.get('model_vision.name_prompt_fusion_feature')!;
  assert.deepEqual(zero.shape, [1, 1, 48]);
  const lIn = c.tensor('fusion_zero.l_in') as tf.Tensor3D;
  assert.equal(tf.max(tf.abs(lIn)).dataSync()[0], 0);
  const vIn = c.tensor('fusion_zero.v_in') as tf.Tensor3D;
  const full = m.forward(vIn, lIn);
  assert.ok(maxAbsDiff(full.v, c.tensor('fusion_zero.v_out')) <= tol);
  assert.ok(maxAbsDiff(full.l!, c.tensor('fusion_zero.l_out')) <= tol);
  const visionOnly = m.forward(vIn, lIn, { needLanguage: false });
  assert.equal(visionOnly.l, null);
  assert.ok(maxAbsDiff(visionOnly.v, c.tensor('fusion_zero.v_out')) <= tol);
});

test('align: logits match APE, including an all-zero prompt row', async () => {
  const m = await fixtureAlign();
  const c = cases();
  const queries = c.tensor('align.queries') as tf.Tensor3D;
  const text = c.tensor('align.text') as tf.Tensor3D;
  const logits = m.forward(queries, text);
  assert.ok(maxAbsDiff(logits, c.tensor('align.logits')) <= tolerance('align'));
  // Shared prompts ([P, D]) take the 2-D path: same numbers as image 0's rows.
  const shared = m.forward(
    tf.slice(queries, [0, 0, 0], [1, -1, -1]) as tf.Tensor3D,
    tf.squeeze(tf.slice(text, [0, 0, 0], [1, -1, -1]), [0]) as tf.Tensor2D,
  );
  assert.ok(maxAbsDiff(shared, tf.slice(c.tensor('align.logits'), [0, 0, 0], [1, -1, -1])) <= tolerance('align'));
});

test('msda module, encoder call: 2-d reference points, padding mask, value = query', async () => {
  const m = await fixtureMsda();
  const c = cases();
  const shapes: [number, number][] = [
    [8, 8],
    [4, 4],
    [2, 2],
  ];
  const query = c.tensor('msda_enc.query') as tf.Tensor3D;
  const [b, lq] = query.shape;
  const frame = pointSamplingFrame(Float32Array.from(c.values('msda_enc.reference_points')), b, lq, shapes, 4);
  const keep = tf.tensor3d(
    c.values('msda_enc.key_padding_mask').map((v) => 1 - v),
    [b, lq, 1],
  );
  const out = m.forward({
    query,
    queryPos: c.tensor('msda_enc.query_pos') as tf.Tensor3D,
    valueKeep: keep,
    frame,
    spatialShapes: shapes,
  });
  const diff = maxAbsDiff(out, c.tensor('msda_enc.output'));
  assert.ok(diff <= tolerance('msda_module'), `diff ${diff}`);
});

test('msda module, decoder call: 4-d reference boxes, separate value', async () => {
  const m = await fixtureMsda();
  const c = cases();
  const shapes: [number, number][] = [
    [8, 8],
    [4, 4],
    [2, 2],
  ];
  const query = c.tensor('msda_dec.query') as tf.Tensor3D;
  const value = c.tensor('msda_dec.value') as tf.Tensor3D;
  const [b, lq] = query.shape;
  const frame = boxSamplingFrame(tf.tensor4d(c.values('msda_dec.reference_points'), [b, lq, 3, 4]), 4);
  const keep = tf.tensor3d(
    c.values('msda_dec.key_padding_mask').map((v) => 1 - v),
    [b, value.shape[1], 1],
  );
  const out = m.forward({
    query,
    queryPos: c.tensor('msda_dec.query_pos') as tf.Tensor3D,
    value,
    valueKeep: keep,
    frame,
    spatialShapes: shapes,
  });
  const diff = maxAbsDiff(out, c.tensor('msda_dec.output'));
  assert.ok(diff <= tolerance('msda_module'), `diff ${diff}`);
});
