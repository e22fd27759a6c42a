import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine } from '../../src/engine/engine.js';
import { Trainer } from '../../src/training/trainer.js';
import { Rng } from '../../src/util/random.js';
import { makeSynthDir, tinyConfig } from './tiny-run.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

test('workers: 2 trains with a worker thread whose weights stay identical to the main thread', async () => {
  const dir = await makeSynthDir(4);
  const trainer = await Trainer.create(tinyConfig(dir, { workers: 2 }));
  try {
    const workerTensors: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await trainer.trainStep();
      assert.ok(Number.isFinite(r.losses.total), `step ${i} loss ${r.losses.total}`);
      workerTensors.push(trainer.workerTensors);
    }
    // Weight syncs replace tensors in place: nothing accumulates in the worker.
    assert.ok(workerTensors[0]! > 0);
    assert.deepEqual(workerTensors.slice(1), [workerTensors[1], workerTensors[1]]);
    // After three updates the worker must compute exactly what this thread computes.
    const batch = await trainer.loadBatch({ dataset: 0, images: [0, 1], seed: 7 });
    const local = trainer.computeGradients(batch, new Rng(3), null);
    const copy = { ...batch, images: batch.images.slice() };
    const remote = await trainer.computeGradientsInWorker(copy, 3, null);
    assert.deepEqual(remote.losses, local.losses);
    assert.deepEqual([...remote.grads.keys()].sort(), [...local.grads.keys()].sort());
    for (const [name, g] of local.grads) assert.deepEqual(remote.grads.get(name), g, `gradient of ${name}`);
  } finally {
    await trainer.close();
  }
});

test('workers: parameters frozen by a 0 multiplier get no gradient in the worker either', async () => {
  const dir = await makeSynthDir(4);
  const trainer = await Trainer.create(
    tinyConfig(dir, { workers: 2, optimizer: { lr: 1e-3, clipNorm: 1, lrMultipliers: { 'model_language.': 0 } } }),
  );
  try {
    const r = await trainer.trainStep();
    assert.ok(Number.isFinite(r.losses.total));
    const batch = await trainer.loadBatch({ dataset: 0, images: [0, 1], seed: 7 });
    const local = trainer.computeGradients(batch, new Rng(3), null);
    const remote = await trainer.computeGradientsInWorker({ ...batch, images: batch.images.slice() }, 3, null);
    assert.deepEqual([...remote.grads.keys()].sort(), [...local.grads.keys()].sort());
    assert.ok(![...remote.grads.keys()].some((name) => name.startsWith('model_language.')));
    assert.ok(remote.grads.size > 0);
  } finally {
    await trainer.close();
  }
});
