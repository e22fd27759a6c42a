import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/engine.js';
import type { ImageTargets } from '../../src/data/batch.js';
import { listCheckpoints, loadCheckpoint } from '../../src/training/checkpoint.js';
import { parsePretrainConfig, type PretrainConfig } from '../../src/training/pretrain/config.js';
import { cellClassTargets, objectPooling } from '../../src/training/pretrain/dense-targets.js';
import { Pretrainer } from '../../src/training/pretrain/pretrainer.js';
import { shapeProbe } from '../../src/training/pretrain/shape-probe.js';
import { runTraining } from '../../src/training/run.js';
import { Trainer } from '../../src/training/trainer.js';
import { makeSynthDir, tinyConfig, tinyConfigJson } from './tiny-run.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

/** Two masks on a 4x4 canvas: prompt 1 on the top-left 2x2 block, prompt 0 on the top row (overlapping). */
function targets(): ImageTargets {
  const a = new Uint8Array(16);
  for (const i of [0, 1, 4, 5]) a[i] = 1;
  const b = new Uint8Array(16);
  for (const i of [0, 1, 2, 3]) b[i] = 1;
  return {
    labels: Int32Array.from([1, 0]),
    boxes: new Float32Array(8),
    masks: [a, b],
    promptWeights: null,
    positiveOnlyPrompts: [],
    width: 4,
    height: 4,
  };
}

test('dense targets: per-cell class shares, covered weight, object pooling rows, by hand', () => {
  const { probs, weights } = cellClassTargets(targets(), 4, 2, 2, 2);
  // Cell 0 (top-left 2x2): mask a covers 4/4, mask b 2/4 -> shares 1 and 0.5, normalised to 2/3 and 1/3.
  assert.deepEqual(
    Array.from(probs.slice(0, 2)).map((v) => +v.toFixed(4)),
    [0.3333, 0.6667],
  );
  // Cell 1 (top-right): only b, 2/4 -> all prompt 0, weight 0.5. Bottom cells: nothing.
  assert.deepEqual(Array.from(probs.slice(2, 4)), [1, 0]);
  assert.deepEqual(Array.from(weights), [1, 0.5, 0, 0]);
  const pool = objectPooling([targets(), { ...targets(), masks: null }], 4, 2, 2);
  assert.equal(pool.count, 2);
  assert.deepEqual(Array.from(pool.labels), [1, 0]);
  // Over the 2 images x 4 cells: a sits in cell 0 of image 0; b half in cell 0, half in cell 1.
  assert.deepEqual(Array.from(pool.weights), [1, 0, 0, 0, 0, 0, 0, 0, 0.5, 0.5, 0, 0, 0, 0, 0, 0]);
});

function pretrainConfig(dir: string, extra: Record<string, unknown> = {}): PretrainConfig {
  const json = { ...tinyConfigJson(dir), output: 'pre', steps: 3, ...extra };
  const file = join(dir, 'pretrain.json');
  writeFileSync(file, JSON.stringify(json));
  return parsePretrainConfig(json, file);
}

test('ape pretrain: trains the backbone and text tower, resume is exact, the weights load into a detector run by name', async () => {
  const dir = await makeSynthDir(4);
  const config = pretrainConfig(dir);
  const quiet = { progress: false, log: () => {} };
  const open = (log: (l: string) => void) => Pretrainer.create(config, log);
  const straight: number[] = [];
  const tensors: number[] = [];
  const a = await runTraining(config, {
    ...quiet,
    open,
    onStep: (r) => {
      straight.push(r.losses.total!);
      tensors.push(tf.memory().numTensors);
    },
  });
  assert.equal(a.step, 3);
  assert.equal(tensors[2], tensors[1], 'no tensor outlives its step');
  assert.ok(straight.every(Number.isFinite));
  const expected = new Map([...a.network.namedParameters()].map(([k, v]) => [k, Array.from(v.dataSync())]));
  a.dispose();
  const init = await Pretrainer.create(pretrainConfig(dir, { output: 'pre-init' }));
  for (const name of [
    'backbone.net.blocks.0.attn.q_proj.weight',
    'backbone.simfp_3.1.weight',
    'model_language.net.text.ln_final.weight',
  ]) {
    assert.notDeepEqual(
      Array.from(init.network.namedParameters().get(name)!.dataSync()),
      expected.get(name),
      `${name} was trained`,
    );
  }
  init.dispose();
  rmSync(config.output, { recursive: true, force: true });
  const resumed: number[] = [];
  (await runTraining(config, { ...quiet, open, maxSteps: 2, onStep: (r) => resumed.push(r.losses.total!) })).dispose();
  const b = await runTraining(config, { ...quiet, open, onStep: (r) => resumed.push(r.losses.total!) });
  assert.deepEqual(resumed, straight);
  b.dispose();

  // The exported weights: backbone and text tower only, with the tokenizer; a detector run starts from them.
  const [weights] = listCheckpoints(Pretrainer.weightsDir(config));
  assert.equal(weights!.step, 3);
  const lines: string[] = [];
  const detector = await Trainer.create(
    tinyConfig(dir, { output: 'det', initFrom: join(Pretrainer.weightsDir(config), weights!.file) }),
    (l) => lines.push(l),
  );
  const got = detector.network.namedParameters();
  for (const name of [
    'backbone.net.blocks.0.attn.q_proj.weight',
    'backbone.simfp_3.1.weight',
    'model_language.net.text.token_embedding.weight',
  ]) {
    assert.deepEqual(Array.from(got.get(name)!.dataSync()), expected.get(name), name);
  }
  const fresh = lines.find((l) => l.includes('initialised afresh'))!;
  assert.ok(
    fresh.includes('transformer.') && !fresh.includes('backbone.') && !fresh.includes('model_language.'),
    fresh,
  );
  detector.dispose();
});

test('ape pretrain resumes from a compact checkpoint: the next loss is exact, the first update within 5% of a step', async () => {
  const dir = await makeSynthDir(4);
  const quiet = { progress: false, log: () => {} };
  const full = pretrainConfig(dir);
  const straight: number[] = [];
  const a = await runTraining(full, {
    ...quiet,
    open: (log) => Pretrainer.create(full, log),
    onStep: (r) => straight.push(r.losses.total!),
  });
  const expected = new Map([...a.allNamedParameters()].map(([k, v]) => [k, v.dataSync()]));
  a.dispose();
  const config = pretrainConfig(dir, { output: 'pre-compact', checkpoint: { every: 1000, format: 'compact' } });
  const open = (log: (l: string) => void) => Pretrainer.create(config, log);
  const losses: number[] = [];
  (await runTraining(config, { ...quiet, open, maxSteps: 2, onStep: (r) => losses.push(r.losses.total!) })).dispose();
  const [saved] = listCheckpoints(Trainer.checkpointDir(config));
  assert.equal((await loadCheckpoint(join(Trainer.checkpointDir(config), saved!.file))).format, 'compact');
  const lines: string[] = [];
  const b = await runTraining(config, {
    ...quiet,
    open,
    log: (l) => lines.push(l),
    onStep: (r) => losses.push(r.losses.total!),
  });
  assert.match(lines.join('\n'), /resumed from step 2/);
  assert.deepEqual(losses, straight, 'step 3 is computed from the restored float32 weights');
  let largest = 0;
  for (const [name, v] of b.allNamedParameters()) {
    const values = v.dataSync();
    const want = expected.get(name)!;
    for (let i = 0; i < values.length; i++) largest = Math.max(largest, Math.abs(values[i]! - want[i]!));
  }
  assert.ok(largest > 0 && largest < 0.05 * config.optimizer.lr, `largest weight difference ${largest}`);
  b.dispose();
});

test('shape probe: accuracy of a ridge probe on pooled backbone features, over the second half of the images', async () => {
  const dir = await makeSynthDir(6);
  const run = await Pretrainer.create(pretrainConfig(dir));
  const r = await shapeProbe(run.network, join(dir, 'synth'), { images: 6 });
  assert.equal(r.level, 'p3');
  assert.ok(r.trainObjects > 0 && r.testObjects > 0, JSON.stringify(r));
  assert.ok(r.accuracy >= 0 && r.accuracy <= 1);
  await assert.rejects(shapeProbe(run.network, join(dir, 'synth'), { level: 'p9' }), /no level 'p9'/);
  run.dispose();
});

test('pretrain config: the pretrain section is checked, and a training config underneath', () => {
  const ok = parsePretrainConfig(
    {
      output: 'x',
      datasets: [{ name: 'a', type: 'detection', annotations: 'i.json' }],
      pretrain: { levels: ['p2', 'p3'] },
    },
    '/p.json',
  );
  assert.deepEqual(ok.pretrain.levels, ['p2', 'p3']);
  assert.equal(ok.pretrain.temperature, 0.07);
  assert.throws(
    () =>
      parsePretrainConfig(
        {
          output: 'x',
          datasets: [{ name: 'a', type: 'detection', annotations: 'i.json' }],
          pretrain: { temprature: 1 },
        },
        '/p.json',
      ),
    /'pretrain.temprature' is not a known setting/,
  );
  assert.throws(
    () =>
      parsePretrainConfig(
        { output: 'x', datasets: [{ name: 'a', type: 'grounding', annotations: 'g.json' }] },
        '/p.json',
      ),
    /'datasets' must include a detection or semantic set/,
  );
  assert.throws(
    () =>
      parsePretrainConfig(
        { output: 'x', workers: 2, datasets: [{ name: 'a', type: 'detection', annotations: 'i.json' }] },
        '/p.json',
      ),
    /'workers' must be 1 for pretraining/,
  );
});
