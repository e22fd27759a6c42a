import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { initEngine } from '../../src/engine/engine.js';
import { runTraining } from '../../src/training/run.js';
import { Trainer } from '../../src/training/trainer.js';
import { listCheckpoints } from '../../src/training/checkpoint.js';
import { loadModel } from '../../src/inference/model-files.js';
import { TINY_TEST_MODEL, makeSynthDir, tinyConfig } from './tiny-run.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

const paramsOf = (t: Trainer) =>
  new Map([...t.network.namedParameters()].map(([k, v]) => [k, Array.from(v.dataSync())]));

/** Asserts that the run's model folder holds exactly `params`. */
async function assertModelFolderHolds(
  config: ReturnType<typeof tinyConfig>,
  params: Map<string, number[]>,
  label: string,
) {
  const folder = await loadModel(Trainer.modelDir(config));
  for (const [name, values] of params)
    assert.deepEqual(Array.from(folder.namedParameters().get(name)!.dataSync()), values, `${label}: ${name}`);
  folder.dispose();
}

test('resuming from a checkpoint continues exactly like an uninterrupted run; a run asked for no step writes its model folder again', async () => {
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
  const first = await runTraining(config, {
    ...quiet,
    maxSteps: 2,
    onStep: (r) => resumedLosses.push(r.losses.total!),
  });
  assert.equal(first.step, 2);
  const atTwo = paramsOf(first);
  first.dispose();
  // --steps 0 on an unfinished run: no step; the model folder is written again from the checkpoint.
  rmSync(Trainer.modelDir(config), { recursive: true, force: true });
  const zero = await runTraining(config, { ...quiet, maxSteps: 0 });
  assert.equal(zero.step, 2);
  zero.dispose();
  await assertModelFolderHolds(config, atTwo, 'step 2');
  assert.deepEqual(
    listCheckpoints(Trainer.checkpointDir(config)).map((c) => c.step),
    [2],
  );
  const second = await runTraining(config, { ...quiet, onStep: (r) => resumedLosses.push(r.losses.total!) });
  assert.equal(second.step, 4);

  assert.deepEqual(resumedLosses, straightLosses);
  const got = paramsOf(second);
  for (const [name, values] of expected)
    assert.deepEqual(got.get(name), values, `parameter ${name} differs after resume`);
  assert.deepEqual(second.bank.getState().texts, expectedBank.texts);
  second.dispose();

  // Asked again once finished (the model folder gone, as in a fresh clone that has the checkpoint
  // only): no step, and the model folder is written again from the checkpoint.
  rmSync(Trainer.modelDir(config), { recursive: true, force: true });
  const lines: string[] = [];
  const third = await runTraining(config, { progress: false, log: (l) => lines.push(l) });
  assert.equal(third.step, 4);
  third.dispose();
  assert.match(lines.join('\n'), /nothing to do: the run is at step 4 of 4; its weights are written again to .*model/);
  await assertModelFolderHolds(config, expected, 'model folder');
});

test("a run with initFrom starts from another run's checkpoint: its weights and tokenizer, a fresh stem, step 0", async () => {
  const dir = await makeSynthDir(6);
  const quiet = { progress: false, log: () => {} };
  const first = await runTraining(tinyConfig(dir, { steps: 2 }), quiet);
  const trained = paramsOf(first);
  const vocab = first.tokenizer.toJSON();
  first.dispose();
  const [checkpoint] = listCheckpoints(Trainer.checkpointDir(tinyConfig(dir)));
  assert.equal(checkpoint!.step, 2);
  const lines: string[] = [];
  const stemModel = { ...TINY_TEST_MODEL, backbone: { ...TINY_TEST_MODEL.backbone, stem: { channels: [8, 8, 16] } } };
  const config = tinyConfig(dir, {
    output: 'run-stem',
    initFrom: `run/checkpoints/${checkpoint!.file}`,
    model: { preset: 'tiny', textVocabSize: 256, overrides: stemModel },
  });
  const second = await Trainer.create(config, (line) => lines.push(line));
  assert.equal(second.step, 0);
  assert.deepEqual(second.tokenizer.toJSON(), vocab);
  const got = paramsOf(second);
  for (const [name, values] of trained) assert.deepEqual(got.get(name), values, name);
  const fresh = [...got.keys()].filter((name) => !trained.has(name));
  assert.deepEqual(fresh.sort(), [
    'backbone.stem.convs.0.weight',
    'backbone.stem.convs.1.weight',
    'backbone.stem.convs.2.weight',
    'backbone.stem.norms.0.bias',
    'backbone.stem.norms.0.weight',
    'backbone.stem.norms.1.bias',
    'backbone.stem.norms.1.weight',
    'backbone.stem.norms.2.bias',
    'backbone.stem.norms.2.weight',
    'backbone.stem.proj_p3.bias',
    'backbone.stem.proj_p3.weight',
  ]);
  assert.ok(
    lines.some((l) => l.includes(`weights from ${config.initFrom} (step 2); initialised afresh: backbone.stem.`)),
    lines.join('\n'),
  );
  await second.trainStep();
  assert.ok(
    paramsOf(second)
      .get('backbone.stem.proj_p3.weight')!
      .some((v) => v !== 0),
    'the stem projection moved',
  );
  second.dispose();
});
