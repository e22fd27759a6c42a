import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/engine.js';
import { readSafetensorsHeaderFile, writeSafetensorsFile } from '../../src/io/safetensors-node.js';
import { runTraining } from '../../src/training/run.js';
import { Trainer } from '../../src/training/trainer.js';
import {
  NoReadableCheckpointError,
  checkpointName,
  listCheckpoints,
  loadCheckpoint,
  loadLatestCheckpoint,
  saveCheckpoint,
  type TrainingCheckpoint,
} from '../../src/training/checkpoint.js';
import { ape } from '../cli/ape-cli.js';
import { makeSynthDir, tinyConfig } from './tiny-run.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

const make = (step: number): TrainingCheckpoint => ({
  step,
  params: new Map([['layer.weight', { shape: [40, 40], data: new Float32Array(1600).fill(step) }]]),
  optimizer: {
    step,
    moments: new Map([['layer.weight', { m: new Float32Array(1600).fill(0.5), v: new Float32Array(1600).fill(0.25) }]]),
  },
  optimizerParamSteps: { 'layer.weight': step },
  extras: new Map(),
  state: { step },
});

/** Writes `count` float32 NaNs into a file's tensor data, as the probe did (the header stays valid). */
async function writeNaNs(path: string, count: number): Promise<void> {
  const header = await readSafetensorsHeaderFile(path);
  const fd = openSync(path, 'r+');
  try {
    const nan = new Uint8Array(new Float32Array(count).fill(NaN).buffer);
    writeSync(fd, nan, 0, nan.length, header.dataStart + 64);
  } finally {
    closeSync(fd);
  }
}

test('an altered checkpoint fails its checksum; the previous one is used, saying so', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ape-ckpt-sum-'));
  await saveCheckpoint(dir, make(10), 3);
  const newest = await saveCheckpoint(dir, make(20), 3);
  await writeNaNs(newest, 1000);
  await assert.rejects(
    loadCheckpoint(newest),
    /tensor '[^']+' fails its checksum \(CRC-32 [0-9a-f]{8}, written as [0-9a-f]{8}\): the file was altered or damaged/,
  );
  const lines: string[] = [];
  const latest = await loadLatestCheckpoint(dir, (line) => lines.push(line));
  assert.equal(latest!.checkpoint.step, 10);
  assert.match(lines.join('\n'), /step-000000020\.safetensors cannot be used: tensor .* fails its checksum/);
  assert.match(lines.join('\n'), /falling back to checkpoint .*step-000000010\.safetensors \(step 10\)/);
});

test('checkpoints written before checksums were kept still load (as the old runs in the history have none)', async () => {
  // A small one of the old form: the same file minus the checksums entry.
  const dir = mkdtempSync(join(tmpdir(), 'ape-ckpt-old-'));
  const written = await saveCheckpoint(dir, make(5), 3);
  const old = await readSafetensorsHeaderFile(written);
  const { checksums, ...metadata } = old.metadata;
  assert.ok(checksums);
  const c = make(5);
  await writeSafetensorsFile(
    join(dir, checkpointName(6)),
    new Map([
      ['model.layer.weight', { dtype: 'F32', shape: [40, 40], data: c.params.get('layer.weight')!.data }],
      ['optim.m.layer.weight', { dtype: 'F32', shape: [40, 40], data: c.optimizer.moments.get('layer.weight')!.m }],
      ['optim.v.layer.weight', { dtype: 'F32', shape: [40, 40], data: c.optimizer.moments.get('layer.weight')!.v }],
    ]),
    { ...metadata, step: '6' },
  );
  assert.equal((await loadCheckpoint(join(dir, checkpointName(6)))).step, 6);
});

test('pruning keeps the checkpoint just written even when damaged files of later steps are there', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ape-ckpt-prune-'));
  writeFileSync(join(dir, checkpointName(900)), 'damaged');
  writeFileSync(join(dir, checkpointName(1000)), 'damaged');
  for (const step of [10, 20, 30]) await saveCheckpoint(dir, make(step), 2);
  assert.deepEqual(
    listCheckpoints(dir).map((c) => c.step),
    [20, 30, 900, 1000],
  );
});

test('every checkpoint unreadable: training refuses, names the files, and leaves model/ as it was; --restart keeps them aside', async () => {
  const dir = await makeSynthDir(6);
  const config = tinyConfig(dir, { steps: 2 });
  const quiet = { progress: false, log: () => {} };
  (await runTraining(config, quiet)).dispose();
  const checkpoints = Trainer.checkpointDir(config);
  const model = join(Trainer.modelDir(config), 'model.safetensors');
  const trained = readFileSync(model);
  for (const { file } of listCheckpoints(checkpoints)) writeFileSync(join(checkpoints, file), 'zeroed by a disk fault');
  writeFileSync(join(checkpoints, checkpointName(9)), new Uint8Array(64));
  await assert.rejects(runTraining(config, quiet), (error: unknown) => {
    assert.ok(error instanceof NoReadableCheckpointError);
    assert.match(error.message, /none of the 2 checkpoints in .* can be read/);
    assert.match(error.message, /step-000000002\.safetensors: /);
    assert.match(error.message, /step-000000009\.safetensors: /);
    assert.match(error.message, /--restart/);
    return true;
  });
  assert.deepEqual(readFileSync(model), trained, 'model/ untouched');
  assert.deepEqual(
    listCheckpoints(checkpoints).map((c) => c.step),
    [2, 9],
    'nothing pruned',
  );
  // The command line exits non-zero with the same message.
  const cli = ape(['train', '--config', join(dir, 'config.json')]);
  assert.equal(cli.code, 1, cli.stderr);
  assert.match(cli.stderr, /none of the 2 checkpoints .* can be read/);
  const badSteps = ape(['train', '--config', join(dir, 'config.json'), '--steps', '1.5']);
  assert.equal(badSteps.code, 2);
  assert.match(badSteps.stderr, /--steps must be a whole number, got '1.5'/);
  // --restart starts over, the old run renamed aside.
  const lines: string[] = [];
  const fresh = await runTraining(config, { progress: false, log: (l) => lines.push(l), restart: true });
  assert.equal(fresh.step, 2);
  fresh.dispose();
  const aside = readdirSync(config.output).filter((n) => n.includes('before-restart'));
  assert.equal(aside.length, 2, aside.join(', '));
  assert.deepEqual(
    readFileSync(join(config.output, aside.find((n) => n.startsWith('model'))!, 'model.safetensors')),
    trained,
  );
  assert.match(lines.join('\n'), /restart: .*checkpoints moved to/);
});

test('a model folder without checkpoints is not overwritten by a new run; leftover .tmp files are removed on start', async () => {
  const dir = await makeSynthDir(6);
  const config = tinyConfig(dir, { steps: 1 });
  mkdirSync(Trainer.modelDir(config), { recursive: true });
  writeFileSync(join(Trainer.modelDir(config), 'model.safetensors'), 'the only good copy');
  await assert.rejects(
    runTraining(config, { progress: false, log: () => {} }),
    /holds a trained model but .* has no checkpoint to resume; a new run would replace it/,
  );
  assert.equal(readFileSync(join(Trainer.modelDir(config), 'model.safetensors'), 'utf8'), 'the only good copy');

  const other = tinyConfig(dir, { steps: 1, output: 'run-tmp' });
  mkdirSync(Trainer.checkpointDir(other), { recursive: true });
  const leftover = join(Trainer.checkpointDir(other), `${checkpointName(1)}.123.456.tmp`);
  writeFileSync(leftover, 'partial');
  const lines: string[] = [];
  (await runTraining(other, { progress: false, log: (l) => lines.push(l) })).dispose();
  assert.equal(existsSync(leftover), false);
  assert.match(lines.join('\n'), /removed 1 temporary file\(s\) left by an interrupted write/);
});

test("a run whose newest checkpoint fails its checksum resumes from the previous one and keeps that checkpoint's model folder aside", async () => {
  const dir = await makeSynthDir(6);
  const config = tinyConfig(dir, { steps: 2, checkpoint: { every: 1, keep: 3 } });
  const quiet = { progress: false, log: () => {} };
  (await runTraining(config, quiet)).dispose();
  const checkpoints = Trainer.checkpointDir(config);
  await writeNaNs(join(checkpoints, checkpointName(2)), 1000);
  const exported = readFileSync(join(Trainer.modelDir(config), 'model.safetensors'));
  const lines: string[] = [];
  const resumed = await runTraining(tinyConfig(dir, { steps: 3, checkpoint: { every: 1, keep: 3 } }), {
    progress: false,
    log: (l) => lines.push(l),
  });
  assert.equal(resumed.step, 3);
  resumed.dispose();
  const log = lines.join('\n');
  assert.match(log, /step-000000002\.safetensors cannot be used: tensor .* fails its checksum/);
  assert.match(log, /falling back to checkpoint .*step-000000001\.safetensors \(step 1\)/);
  assert.match(log, /resumed from step 1/);
  const aside = join(config.output, 'model.from-step-000000002');
  assert.match(log, new RegExp(`kept as ${aside.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  assert.deepEqual(readFileSync(join(aside, 'model.safetensors')), exported);
});
