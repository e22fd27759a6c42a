import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { initEngine } from '../../src/engine/engine.js';
import { runTraining } from '../../src/training/run.js';
import { Trainer } from '../../src/training/trainer.js';
import { listCheckpoints } from '../../src/training/checkpoint.js';
import { makeSynthDir, tinyConfig } from './tiny-run.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

const paramsOf = (t: Trainer) => new Map([...t.network.namedParameters()].map(([k, v]) => [k, Array.from(v.dataSync())]));

test('resuming from a checkpoint continues exactly like an uninterrupted run', async () => {
  const dir = await makeSynthDir(6);
  const config = tinyConfig(dir);
  const quiet = { progress: false, log: () => {} };

  const straightLosses: number[] = [];
  const straight = await runTraining(config, { ...quiet, onStep: (r) => straightLosses.push(r.losses.total!) });
  assert.equal(straight.step, 4);
  const expected = paramsOf(straight);
  const expectedBank = straight.bank.getState();
  straight.dispose();
  rmSync(config.output, { recursive: true, force: true });

  const resumedLosses: number[] = [];
  const first = await runTraining(config, { ...quiet, maxSteps: 2, onStep: (r) => resumedLosses.push(r.losses.total!) });
  assert.equal(first.step, 2);
  first.dispose();
  assert.deepEqual(listCheckpoints(Trainer.checkpointDir(config)).map((c) => c.step), [2]);
  const second = await runTraining(config, { ...quiet, onStep: (r) => resumedLosses.push(r.losses.total!) });
  assert.equal(second.step, 4);

  assert.deepEqual(resumedLosses, straightLosses);
  const got = paramsOf(second);
  for (const [name, values] of expected) assert.deepEqual(got.get(name), values, `parameter ${name} differs after resume`);
  assert.deepEqual(second.bank.getState().texts, expectedBank.texts);
  second.dispose();
});
