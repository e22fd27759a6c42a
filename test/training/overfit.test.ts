import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import { promptSeparationLoss } from '../../src/training/losses/prompt-separation.js';
import { runTraining } from '../../src/training/run.js';
import { Trainer } from '../../src/training/trainer.js';
import { Rng } from '../../src/util/random.js';
import { makeSynthDir, tinyConfig } from './tiny-run.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

test('a tiny model overfits two images: every loss term falls, the total by more than half', async () => {
  const dir = await makeSynthDir(2);
  const config = tinyConfig(dir, {
    steps: 30,
    optimizer: { lr: 2e-3, clipNorm: 1, weightDecay: 0 },
    augment: { flipProbability: 0, scaleRange: [1, 1], crop: false, minSize: 1 },
    datasets: [
      { name: 'inst', type: 'detection', annotations: 'synth/instances.json', imageRoot: 'synth/images', weight: 1 },
    ],
  });
  const losses: Record<string, number>[] = [];
  const trainer = await runTraining(config, { progress: false, log: () => {}, onStep: (r) => losses.push(r.losses) });
  const mean = (from: number, to: number, key: string) =>
    losses.slice(from, to).reduce((s, l) => s + l[key]!, 0) / (to - from);
  const early = (k: string) => mean(0, 3, k);
  const late = (k: string) => mean(27, 30, k);
  assert.ok(late('total') < 0.5 * early('total'), `total ${early('total')} -> ${late('total')}`);
  for (const k of ['class', 'l1', 'giou', 'mask', 'dice', 'enc_class', 'enc_l1', 'enc_giou'])
    assert.ok(late(k) < early(k), `${k} ${early(k)} -> ${late(k)}`);
  trainer.dispose();
});

test('every trainable parameter is trained by some dataset type', async () => {
  // Zero-initialised last layers (box MLPs, deformable offsets) block gradients to the layers
  // before them at the very first step, so this takes two rounds of updates and compares weights.
  const dir = await makeSynthDir(2);
  const config = tinyConfig(dir);
  const trainer = await Trainer.create(config);
  const initial = new Map([...trainer.network.namedParameters()].map(([k, v]) => [k, v.dataSync().slice()]));
  for (let round = 0; round < 2; round++) {
    for (let dataset = 0; dataset < config.datasets.length; dataset++) {
      const batch = await trainer.loadBatch({ dataset, images: [0, 1], seed: round });
      const { grads } = trainer.computeGradients(batch, new Rng(round));
      trainer.optimizer.apply(grads, 1e-3);
    }
  }
  const untouched = [...trainer.network.namedParameters()]
    .filter(([n, v]) => v.trainable && v.dataSync().every((x, i) => x === initial.get(n)![i]))
    .map(([n]) => n);
  assert.deepEqual(untouched, []);
  trainer.dispose();
});

test('a sentence batch that lost all its phrases trains what it can, or nothing', async () => {
  const dir = await makeSynthDir(2);
  const trainer = await Trainer.create(tinyConfig(dir));
  const batch = await trainer.loadBatch({ dataset: 1, images: [0, 1], seed: 1 });
  const empty = {
    ...batch,
    prompts: [],
    targets: batch.targets.map((t) => ({
      ...t,
      labels: new Int32Array(0),
      boxes: new Float32Array(0),
      masks: t.masks ? [] : null,
    })),
  };
  // Grounding with masks: boxes and masks still train (no objects: zero losses), no class loss.
  const r = trainer.computeGradients(empty, new Rng(1), null);
  assert.ok(!('class' in r.losses));
  assert.equal(r.losses.l1, 0);
  const noMasks = { ...empty, switches: { ...empty.switches, boxes: false, masks: false } };
  const none = trainer.computeGradients(noMasks, new Rng(1), null);
  assert.deepEqual(none.losses, { total: 0 });
  assert.equal(none.grads.size, 0);
  trainer.dispose();
});

test('the separation term reads the text tower vectors of the batch prompts', async () => {
  const dir = await makeSynthDir(2);
  const trainer = await Trainer.create(
    tinyConfig(dir, { loss: { weights: { separation: 1 }, separationMargin: 0.1 } }),
  );
  const batch = await trainer.loadBatch({ dataset: 0, images: [0, 1], seed: 1 });
  const r = trainer.computeGradients(batch, new Rng(1), null);
  const vectors = trainer.network.encodePrompts(batch.prompts);
  const expected = promptSeparationLoss(vectors, batch.prompts, 0.1);
  assert.ok(
    Math.abs(r.losses.separation! - expected.dataSync()[0]!) < 1e-5,
    `${r.losses.separation} vs ${expected.dataSync()[0]}`,
  );
  assert.ok(r.losses.separation! > 0);
  tf.dispose([vectors, expected]);
  trainer.dispose();
});

test('the pixel-class term trains batches with classes and masks only', async () => {
  const dir = await makeSynthDir(2);
  const trainer = await Trainer.create(tinyConfig(dir, { loss: { weights: { pixelClass: 1 } } }));
  const detection = trainer.computeGradients(
    await trainer.loadBatch({ dataset: 0, images: [0, 1], seed: 1 }),
    new Rng(1),
    null,
  );
  assert.ok(
    detection.losses.pixel_class! > 0 && Number.isFinite(detection.losses.pixel_class!),
    JSON.stringify(detection.losses),
  );
  const agnostic = trainer.computeGradients(
    await trainer.loadBatch({ dataset: 2, images: [0, 1], seed: 1 }),
    new Rng(1),
    null,
  );
  assert.ok(!('pixel_class' in agnostic.losses));
  trainer.dispose();
});
