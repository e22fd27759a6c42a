import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/engine.js';
import { readSafetensorsFile, readSafetensorsHeaderFile, writeSafetensorsFile } from '../../src/io/safetensors-node.js';
import {
  checkpointName,
  listCheckpoints,
  loadCheckpoint,
  loadLatestCheckpoint,
  saveCheckpoint,
  type TrainingCheckpoint,
} from '../../src/training/checkpoint.js';
import { compactCheckpoint } from '../../src/training/compact-checkpoint.js';
import {
  MOMENT_BLOCK,
  decodeMoments,
  encodeMoments,
  updateDirectionError,
} from '../../src/training/optim/compact-moments.js';
import { runTraining } from '../../src/training/run.js';
import { Trainer, type StepReport } from '../../src/training/trainer.js';
import { ape } from '../cli/ape-cli.js';
import { makeSynthDir, tinyConfig } from './tiny-run.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

test('8-bit moments by hand: v on a log grid, m as m/sqrt(v) against the block largest, zeros exact', () => {
  // ln v spans [0, 2.54]: the grid step is 0.01; r = m / sqrt(v) is 0.5 and -1, so the scale is 1.
  const v = new Float32Array([1, Math.exp(2.54), 0, Math.exp(1.27)]);
  const m = new Float32Array([0.5, -Math.exp(1.27), 0, 0]);
  const c = encodeMoments(m, v);
  assert.deepEqual([...c.vCodes], [1, 255, 0, 128]);
  assert.equal(c.vRanges[0], 0);
  assert.equal(c.vRanges[1], Math.fround(0.01));
  assert.deepEqual([...c.rCodes], [64, -127, 0, 0]); // 0.5 * 127 = 63.5 rounds up
  assert.ok(Math.abs(c.rScales[0]! - 1) < 1e-6);
  const back = decodeMoments(c);
  assert.equal(back.v[0], 1);
  assert.equal(back.v[2], 0);
  assert.equal(back.m[2], 0);
  assert.ok(Math.abs(back.v[1]! / v[1]! - 1) < 1e-5);
  assert.ok(Math.abs(back.v[3]! / v[3]! - 1) < 1e-5);
  assert.ok(Math.abs(back.m[0]! - 64 / 127) < 1e-6); // r decoded as 64/127, sqrt(v) = 1
  assert.ok(Math.abs(back.m[1]! - m[1]!) < 1e-5);
});

test('8-bit moments: every value within half a grid step, over blocks with a wide dynamic range', () => {
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const n = 3 * MOMENT_BLOCK + 37;
  const v = new Float32Array(n);
  const m = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    v[i] = i % 97 === 0 ? 0 : 10 ** (-16 + 12 * rand());
    m[i] = v[i] === 0 ? 0 : (rand() - 0.5) * 2 * Math.sqrt(v[i]!);
  }
  const c = encodeMoments(m, v);
  assert.equal(c.rScales.length, 4);
  const back = decodeMoments(c);
  for (let i = 0; i < n; i++) {
    const b = Math.floor(i / MOMENT_BLOCK);
    if (v[i] === 0) {
      assert.equal(back.v[i], 0);
      assert.equal(back.m[i], 0);
      continue;
    }
    const step = c.vRanges[2 * b + 1]!;
    assert.ok(Math.abs(Math.log(back.v[i]!) - Math.log(v[i]!)) <= step / 2 + 1e-6, `v[${i}]`);
    const r = m[i]! / Math.sqrt(v[i]!);
    const rBack = back.m[i]! / Math.sqrt(back.v[i]!);
    assert.ok(Math.abs(r - rBack) <= c.rScales[b]! / 254 + 1e-6, `m[${i}]`);
  }
  const moments = new Map([['p', { m, v }]]);
  // r uniform in [-1, 1] rounded to steps of 1/127: rms error 1/(127 sqrt 12) against rms 1/sqrt 3, i.e. 1/254.
  const error = updateDirectionError(moments, new Map([['p', back]]));
  assert.ok(Math.abs(error - 1 / 254) < 4e-4, `update direction error ${error}`);
  assert.throws(
    () => encodeMoments(new Float32Array([Number.NaN]), new Float32Array([1]), 'blocks.0.weight'),
    /blocks\.0\.weight: moment value 0 is not finite/,
  );
  assert.throws(
    () => decodeMoments({ ...c, rScales: new Float32Array(3) }, 'p'),
    /p: the 8-bit moments do not fit together \(805 v codes, 805 m codes, 4 v ranges and 3 m scales for 4 blocks/,
  );
});

const make = (step: number): TrainingCheckpoint => {
  const n = 1000;
  const v = new Float32Array(n).map((_, i) => (i % 10 === 0 ? 0 : 1e-8 * (1 + (i % 37))));
  const m = new Float32Array(n).map((_, i) => (v[i] === 0 ? 0 : Math.sin(i) * Math.sqrt(v[i]!)));
  return {
    step,
    params: new Map([['layer.weight', { shape: [40, 25], data: new Float32Array(n).map((_, i) => i / 7 + step) }]]),
    optimizer: { step, moments: new Map([['layer.weight', { m, v }]]) },
    optimizerParamSteps: { 'layer.weight': step },
    extras: new Map([['negative_bank', { shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }]]),
    state: { step, note: 'run state' },
  };
};

test('a compact checkpoint: weights, extras and state exact, moments within their precision, about half the bytes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ape-ckpt-compact-'));
  const full = await saveCheckpoint(join(dir, 'full'), make(10), 3);
  const compact = await saveCheckpoint(join(dir, 'compact'), make(10), 3, 'compact');
  // Per value: 4 weight bytes + 8 moment bytes against 4 + 2, plus the scales.
  const ratio = statSync(compact).size / statSync(full).size;
  assert.ok(ratio > 0.45 && ratio < 0.6, `size ratio ${ratio}`);
  const header = await readSafetensorsHeaderFile(compact);
  assert.equal(header.metadata.moments, 'q8-block');
  assert.deepEqual(header.tensors.map((t) => `${t.name} ${t.dtype}`).sort(), [
    'extra.negative_bank F32',
    'model.layer.weight F32',
    'optim.r8.layer.weight I8',
    'optim.r8scale.layer.weight F32',
    'optim.v8.layer.weight U8',
    'optim.v8range.layer.weight F32',
  ]);
  const a = await loadCheckpoint(full);
  const b = await loadCheckpoint(compact);
  assert.equal(a.format, 'full');
  assert.equal(b.format, 'compact');
  assert.deepEqual(b.params, a.params);
  assert.deepEqual(b.extras, a.extras);
  assert.deepEqual(b.state, a.state);
  assert.deepEqual(b.optimizerParamSteps, a.optimizerParamSteps);
  assert.equal(b.optimizer.step, 10);
  const error = updateDirectionError(a.optimizer.moments, b.optimizer.moments);
  assert.ok(error < 0.01, `update direction error ${error}`);
});

test('a damaged compact checkpoint fails its checksum and the previous one is used; an unknown encoding is named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ape-ckpt-compact-bad-'));
  await saveCheckpoint(dir, make(10), 3, 'compact');
  const newest = await saveCheckpoint(dir, make(20), 3, 'compact');
  // One byte of the 8-bit codes changed: a flipped code would decode as another value silently.
  const header = await readSafetensorsHeaderFile(newest);
  const codes = header.tensors.find((t) => t.name === 'optim.v8.layer.weight')!;
  const fd = openSync(newest, 'r+');
  writeSync(fd, new Uint8Array([77]), 0, 1, header.dataStart + codes.begin + 5);
  closeSync(fd);
  await assert.rejects(loadCheckpoint(newest), /tensor 'optim\.v8\.layer\.weight' fails its checksum/);
  const lines: string[] = [];
  const latest = await loadLatestCheckpoint(dir, (line) => lines.push(line));
  assert.equal(latest!.checkpoint.step, 10);
  assert.match(lines.join('\n'), /falling back to checkpoint .*step-000000010\.safetensors \(step 10\)/);

  const file = await readSafetensorsFile(newest);
  const odd = join(dir, 'odd.safetensors');
  await writeSafetensorsFile(odd, file.tensors, { ...file.metadata, moments: 'q4-something' });
  await assert.rejects(
    loadCheckpoint(odd),
    /unknown optimizer-moment encoding 'q4-something' \(known: f32, q8-block\)/,
  );
});

const quiet = { progress: false, log: () => {} };
const paramsOf = (t: Trainer) => new Map([...t.network.namedParameters()].map(([k, v]) => [k, v.dataSync()]));

test('ape train resumes from a compact checkpoint: the next loss is exact, the first update within 5% of a step, later losses close', async () => {
  const dir = await makeSynthDir(6);
  const steps = 5;
  const lr = 1e-3;
  const straightLosses: number[] = [];
  const straightConfig = tinyConfig(dir, { steps });
  const record = { ...quiet, onStep: (r: StepReport) => straightLosses.push(r.losses.total!) };
  // Stopped and resumed from a full checkpoint after step 3, which is exact (resume.test.ts).
  const straight = await runTraining(straightConfig, { ...record, maxSteps: 3 });
  const expected = paramsOf(straight);
  straight.dispose();
  (await runTraining(straightConfig, record)).dispose();

  const config = tinyConfig(dir, { steps, output: 'run-compact', checkpoint: { every: 1000, format: 'compact' } });
  const losses: number[] = [];
  const compactRecord = { ...quiet, onStep: (r: StepReport) => losses.push(r.losses.total!) };
  (await runTraining(config, { ...compactRecord, maxSteps: 2 })).dispose();
  const [saved] = listCheckpoints(Trainer.checkpointDir(config));
  const header = await readSafetensorsHeaderFile(join(Trainer.checkpointDir(config), saved!.file));
  assert.equal(header.metadata.moments, 'q8-block');
  const lines: string[] = [];
  const resumed = await runTraining(config, { ...compactRecord, log: (l) => lines.push(l), maxSteps: 1 });
  assert.match(lines.join('\n'), /resumed from step 2/);
  // One update from the decoded moments: each weight moves within 5% of lr of where the exact moments take it.
  let largest = 0;
  for (const [name, values] of paramsOf(resumed)) {
    const want = expected.get(name)!;
    for (let i = 0; i < values.length; i++) largest = Math.max(largest, Math.abs(values[i]! - want[i]!));
  }
  assert.ok(largest > 0 && largest < 0.05 * lr, `largest weight difference ${largest}`);
  resumed.dispose();
  (await runTraining(config, compactRecord)).dispose();
  // Step 3's loss is computed from the restored float32 weights, before the first update.
  assert.deepEqual(losses.slice(0, 3), straightLosses.slice(0, 3));
  for (let i = 3; i < steps; i++)
    assert.ok(
      Math.abs(losses[i]! - straightLosses[i]!) < 1e-3 * straightLosses[i]!,
      `step ${i + 1}: ${losses[i]} vs ${straightLosses[i]}`,
    );
});

test('ape checkpoint compact: converts the newest usable checkpoint of a folder, a run resumes from it; refusals', async () => {
  const dir = await makeSynthDir(6);
  const config = tinyConfig(dir, { steps: 2, checkpoint: { every: 1, keep: 3 } });
  (await runTraining(config, quiet)).dispose();
  const checkpoints = Trainer.checkpointDir(config);
  const out = join(dir, 'compact');
  const cli = ape(['checkpoint', 'compact', '--from', checkpoints, '--out', out]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(
    cli.stdout,
    /^wrote .*step-000000002\.safetensors \(step 2\): [\d.]+ MB, from [\d.]+ MB \(.*step-000000002\.safetensors\); update direction m\/sqrt\(v\) within [\d.]+% \(relative L2\)\n$/,
  );
  const again = ape(['checkpoint', 'compact', '--from', checkpoints, '--out', out]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /step-000000002\.safetensors exists; remove it or choose another output folder/);
  const twice = ape(['checkpoint', 'compact', '--from', join(out, checkpointName(2)), '--out', join(dir, 'x')]);
  assert.equal(twice.code, 1);
  assert.match(twice.stderr, /already a compact checkpoint/);
  const usage = ape(['checkpoint', 'compact', '--from', checkpoints]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--out is required/);

  // The full step-2 file damaged: the converter falls back to step 1, saying so.
  const fd = openSync(join(checkpoints, checkpointName(2)), 'r+');
  writeSync(fd, new Uint8Array(64).fill(0xff), 0, 64, 4096);
  closeSync(fd);
  const result = await compactCheckpoint(checkpoints, join(dir, 'fallback'), () => {});
  assert.equal(result.step, 1);
  assert.ok(result.directionError < 0.01, `${result.directionError}`);

  // A run whose only checkpoint is the converted one resumes from it and writes compact ones if told to.
  const next = tinyConfig(dir, { steps: 3, output: 'run-next', checkpoint: { every: 1, keep: 1, format: 'compact' } });
  mkdirSync(Trainer.checkpointDir(next), { recursive: true });
  copyFileSync(join(out, checkpointName(2)), join(Trainer.checkpointDir(next), checkpointName(2)));
  const lines: string[] = [];
  const resumed = await runTraining(next, { progress: false, log: (l) => lines.push(l) });
  assert.equal(resumed.step, 3);
  resumed.dispose();
  assert.match(lines.join('\n'), /resumed from step 2/);
  assert.equal((await loadCheckpoint(join(Trainer.checkpointDir(next), checkpointName(3)))).format, 'compact');
});
