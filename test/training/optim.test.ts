import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/engine.js';
import { AdamW } from '../../src/training/optim/adamw.js';
import { learningRateAt } from '../../src/training/optim/schedule.js';
import { clipFactor, accumulateGradients, globalNorm } from '../../src/training/optim/gradients.js';
import { NegativeBank } from '../../src/training/negative-bank.js';
import {
  saveCheckpoint,
  loadLatestCheckpoint,
  listCheckpoints,
  checkpointName,
} from '../../src/training/checkpoint.js';

before(async () => {
  await initEngine({ backend: 'cpu' });
});

test('AdamW matches torch.optim.AdamW by hand for two steps', () => {
  const w = tf.variable(tf.tensor2d([[1, -2]]));
  const b = tf.variable(tf.tensor1d([0.5]));
  const opt = new AdamW(
    new Map<string, tf.Variable>([
      ['w', w],
      ['b', b],
    ]),
    { weightDecay: 0.1, eps: 1e-8 },
  );
  const lr = 0.01;
  let p = [1, -2];
  let m = [0, 0];
  let v = [0, 0];
  const grads = [
    [0.5, -1],
    [0.2, 0.3],
  ];
  for (let t = 1; t <= 2; t++) {
    const g = grads[t - 1]!;
    opt.apply(new Map([['w', Float32Array.from(g)]]), lr);
    p = p.map((x) => x * (1 - lr * 0.1));
    m = m.map((x, i) => 0.9 * x + 0.1 * g[i]!);
    v = v.map((x, i) => 0.999 * x + 0.001 * g[i]! ** 2);
    p = p.map((x, i) => x - ((lr / (1 - 0.9 ** t)) * m[i]!) / (Math.sqrt(v[i]!) / Math.sqrt(1 - 0.999 ** t) + 1e-8));
  }
  const got = w.dataSync();
  p.forEach((x, i) => assert.ok(Math.abs(got[i]! - x) < 1e-6, `${got[i]} vs ${x}`));
  assert.equal(b.dataSync()[0], 0.5); // no gradient, untouched
  assert.equal(opt.getParamSteps().b, 0);
  const state = opt.getState();
  const w2 = tf.variable(tf.tensor2d([[0, 0]]));
  const b2 = tf.variable(tf.tensor1d([0]));
  const opt2 = new AdamW(
    new Map<string, tf.Variable>([
      ['w', w2],
      ['b', b2],
    ]),
    { weightDecay: 0.1 },
  );
  opt2.setState(state, opt.getParamSteps());
  assert.deepEqual(Array.from(opt2.getState().moments.get('w')!.m), Array.from(state.moments.get('w')!.m));
});

test('learning-rate schedule: linear warmup then step and cosine decay', () => {
  const base = { baseLr: 1, warmupSteps: 10, warmupFactor: 0.1 };
  assert.equal(learningRateAt({ ...base, decay: 'constant' }, 0), 0.1);
  assert.ok(Math.abs(learningRateAt({ ...base, decay: 'constant' }, 5) - 0.55) < 1e-12);
  assert.equal(learningRateAt({ ...base, decay: 'constant' }, 10), 1);
  const step = { ...base, decay: 'step' as const, milestones: [20, 30], gamma: 0.5 };
  assert.equal(learningRateAt(step, 19), 1);
  assert.equal(learningRateAt(step, 20), 0.5);
  assert.equal(learningRateAt(step, 35), 0.25);
  const cos = { ...base, warmupSteps: 0, decay: 'cosine' as const, totalSteps: 100, minFactor: 0 };
  assert.ok(Math.abs(learningRateAt(cos, 50) - 0.5) < 1e-12);
  assert.ok(Math.abs(learningRateAt(cos, 100)) < 1e-12);
});

test('global-norm clipping factor max/norm; accumulation sums by name', () => {
  const grads = new Map([
    ['a', Float32Array.from([3])],
    ['b', Float32Array.from([4])],
  ]);
  const norm = globalNorm(grads);
  assert.equal(norm, 5);
  assert.ok(Math.abs(clipFactor(norm, 1) - 0.2) < 1e-6);
  assert.equal(clipFactor(norm, 10), 1);
  assert.equal(clipFactor(norm, 0), 1);
  assert.ok(Number.isNaN(globalNorm(new Map([['x', Float32Array.from([NaN])]]))));
  assert.throws(() => clipFactor(NaN, 1), /gradient norm is NaN/);
  accumulateGradients(
    grads,
    new Map([
      ['a', Float32Array.from([1])],
      ['c', Float32Array.from([2])],
    ]),
  );
  assert.deepEqual(
    [...grads].map(([k, v]) => [k, v[0]]),
    [
      ['a', 4],
      ['b', 4],
      ['c', 2],
    ],
  );
});

test('AdamW applies the gradient scale before the moments (clipping is exact)', () => {
  const w1 = tf.variable(tf.tensor1d([1, 2]));
  const w2 = tf.variable(tf.tensor1d([1, 2]));
  new AdamW(new Map([['w', w1]])).apply(new Map([['w', Float32Array.from([0.5, 1])]]), 0.1, undefined, 0.5);
  new AdamW(new Map([['w', w2]])).apply(new Map([['w', Float32Array.from([0.25, 0.5])]]), 0.1);
  assert.deepEqual(Array.from(w1.dataSync()), Array.from(w2.dataSync()));
});

test('negative bank: FIFO, newest first, excludes current texts, state round trip', () => {
  const bank = new NegativeBank(3);
  const e = (t: string, v: number) => ({ text: t, embedding: new Float32Array([v, v]) });
  bank.push([e('a', 1), e('b', 2), e('c', 3), e('d', 4)]);
  assert.deepEqual(
    bank.negatives(new Set()).map((x) => x.text),
    ['d', 'c', 'b'],
  );
  assert.deepEqual(
    bank.negatives(new Set(['c']), 5).map((x) => x.text),
    ['d', 'b'],
  );
  const copy = new NegativeBank(3);
  copy.setState(bank.getState());
  assert.deepEqual(
    copy.negatives(new Set()).map((x) => Array.from(x.embedding)),
    [
      [4, 4],
      [3, 3],
      [2, 2],
    ],
  );
  assert.throws(
    () => bank.push([{ text: 'x', embedding: new Float32Array(3) }]),
    /embedding of 3 values, the bank holds 2/,
  );
});

test('checkpoints: round trip, keep the newest N, a damaged newest falls back to the previous', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ape-ckpt-'));
  const make = (step: number) => ({
    step,
    params: new Map([['layer.weight', { shape: [2, 2], data: new Float32Array([step, 1, 2, 3]) }]]),
    optimizer: {
      step,
      moments: new Map([['layer.weight', { m: new Float32Array(4).fill(0.5), v: new Float32Array(4).fill(0.25) }]]),
    },
    optimizerParamSteps: { 'layer.weight': step },
    extras: new Map([['bank', { shape: [1, 2], data: new Float32Array([7, 8]) }]]),
    state: { sampler: { rng: 123, cursors: [{ epoch: 1, position: 2 }] }, step },
  });
  for (const step of [10, 20, 30, 40]) await saveCheckpoint(dir, make(step), 3);
  assert.deepEqual(
    listCheckpoints(dir).map((c) => c.step),
    [20, 30, 40],
  );
  // A temporary file from an interrupted write is never taken for a checkpoint.
  writeFileSync(join(dir, `${checkpointName(50)}.123.456.tmp`), 'partial');
  const latest = (await loadLatestCheckpoint(dir))?.checkpoint;
  assert.equal(latest!.step, 40);
  assert.deepEqual(Array.from(latest!.params.get('layer.weight')!.data), [40, 1, 2, 3]);
  assert.deepEqual(latest!.state, { sampler: { rng: 123, cursors: [{ epoch: 1, position: 2 }] }, step: 40 });
  assert.deepEqual(Array.from(latest!.optimizer.moments.get('layer.weight')!.v), [0.25, 0.25, 0.25, 0.25]);
  assert.deepEqual(Array.from(latest!.extras.get('bank')!.data), [7, 8]);
  writeFileSync(join(dir, checkpointName(60)), 'not a checkpoint at all');
  const warnings: string[] = [];
  const fallback = await loadLatestCheckpoint(dir, (m) => warnings.push(m));
  assert.equal(fallback!.checkpoint.step, 40);
  assert.deepEqual(
    fallback!.skipped.map((s) => s.file),
    [checkpointName(60)],
  );
  assert.match(warnings[0]!, /checkpoint .*step-000000060\.safetensors cannot be used/);
  assert.match(warnings[1]!, /falling back to checkpoint .*step-000000040\.safetensors \(step 40\)/);
  assert.ok(readdirSync(dir).length >= 4);
  assert.equal(await loadLatestCheckpoint(join(dir, 'nothing-here')), null);
});
