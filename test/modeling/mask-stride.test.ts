import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf, initEngine } from '../../src/engine/engine.js';
import { ApeNetwork } from '../../src/modeling/ape-network.js';
import { validateConfig, type ApeConfig } from '../../src/modeling/config.js';
import { checkModelConfig } from '../../src/inference/model-folder.js';
import { WordTokenizer } from '../../src/text/word-tokenizer.js';
import { Rng } from '../../src/util/random.js';
import { microConfig } from './micro-config.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
  await import('../../src/engine/gradients-node.js');
});

/** The micro model with a mask-only stride-4 level (and optionally a conv stem whose stride-4 stage feeds it). */
function stride4Config(stem: boolean): ApeConfig {
  const cfg = microConfig();
  cfg.backbone.pyramid = { ...cfg.backbone.pyramid, maskOnlyScales: [4] };
  if (stem) cfg.backbone.stem = { channels: [8, 8, 16] };
  cfg.maskHead = { ...cfg.maskHead, feature: 'p2' };
  return cfg;
}

test('a mask-only stride-4 level: masks at stride 4, the transformer keeps its three levels, the stem feeds p2', () => {
  const cfg = stride4Config(true);
  validateConfig(cfg);
  const net = new ApeNetwork(cfg, WordTokenizer.hashing(cfg.text.encoder.vocabSize, cfg.text.encoder.contextLength), 3);
  const names = [...net.namedParameters().keys()];
  assert.ok(
    names.includes('backbone.simfp_2.0.weight') && names.includes('backbone.simfp_2.3.weight'),
    'the stage is ViTDet simfp_2 (two deconvs)',
  );
  assert.ok(names.includes('backbone.stem.proj_p2.weight') && names.includes('backbone.stem.proj_p3.weight'));
  assert.equal(net.levelNames.join(','), 'p3,p4,p5');
  const images = tf.randomUniform([1, 64, 64, 3], 0, 255) as tf.Tensor4D;
  const out = net.forward({ images, sizes: [[64, 64]] }, { vocabulary: ['cat'] }, { training: true, masks: 'last' });
  assert.equal(out.maskStride, 4);
  assert.deepEqual(out.spatialShapes, [
    [8, 8],
    [4, 4],
    [2, 2],
  ]);
  assert.deepEqual(out.layers[out.layers.length - 1]!.masks!.shape, [1, 12, 16, 16]);
  out.dispose();
  // The p2 stage is trained through the masks.
  const p2 = net.namedParameters().get('backbone.simfp_2.4.weight')!;
  const { grads } = tf.variableGrads(() => {
    const o = net.forward(
      { images, sizes: [[64, 64]] },
      { vocabulary: ['cat'] },
      { training: true, rng: new Rng(1), masks: 'last' },
    );
    const m = o.layers[o.layers.length - 1]!.masks!;
    const loss = tf.mean(tf.square(m)) as tf.Scalar;
    return loss;
  }, [p2]);
  const g = Object.values(grads)[0]!;
  assert.ok((tf.max(tf.abs(g)).dataSync()[0] ?? 0) > 0, 'simfp_2 receives a gradient from the masks');
  tf.dispose([images, ...Object.values(grads)]);
  net.dispose();
});

test('maskOnlyScales: older model configs load without it; a mask feature that is no level is named', () => {
  const plain = microConfig();
  const stored = JSON.parse(
    JSON.stringify({ ...plain, backbone: { ...plain.backbone, pyramid: { ...plain.backbone.pyramid } } }),
  );
  delete stored.backbone.pyramid.maskOnlyScales;
  // A setting that is null in the presets may be absent from a stored config, and stays absent (no mask-only level).
  assert.equal(checkModelConfig(stored, 'config.json').backbone.pyramid.maskOnlyScales, undefined);
  const bad = { ...plain, maskHead: { ...plain.maskHead, feature: 'p2' } };
  assert.throws(() => validateConfig(bad), /maskHead.feature 'p2' is not a pyramid level \(p3, p4, p5\)/);
  validateConfig(stride4Config(false));
});
