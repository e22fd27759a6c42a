import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/engine.js';
import type { ImageTargets } from '../../src/data/batch.js';
import { listCheckpoints, loadCheckpoint } from '../../src/training/checkpoint.js';
import { parsePretrainConfig, type PretrainConfig } from '../../src/training/pretrain/config.js';
import { cellClassTargets, objectPooling, phraseCandidates } from '../../src/training/pretrain/dense-targets.js';
import { phraseNaming } from '../../src/training/pretrain/phrase-loss.js';
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

test('phrase naming by hand: candidates are the image own phrases less the other phrases of the same object', () => {
  const mask = (i: number) => {
    const m = new Uint8Array(16);
    m[i] = 1;
    return m;
  };
  // Object A (cell 0) is referred to by phrases 0 and 1, object B (cell 3) by phrase 2; phrase 3 is another image's.
  const t: ImageTargets = {
    labels: Int32Array.from([0, 1, 2]),
    boxes: Float32Array.from([0.1, 0.1, 0.2, 0.2, 0.1, 0.1, 0.2, 0.2, 0.8, 0.1, 0.2, 0.2]),
    masks: [mask(0), mask(0), mask(3)],
    promptWeights: Float32Array.from([1, 1, 1, 0]),
    positiveOnlyPrompts: [],
    width: 4,
    height: 4,
  };
  const pool = objectPooling([t], 4, 2, 2);
  assert.deepEqual(Array.from(pool.images), [0, 0, 0]);
  assert.deepEqual(Array.from(pool.objects), [0, 1, 2]);
  const candidates = phraseCandidates([t], pool, 4);
  assert.deepEqual(Array.from(candidates), [1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0]);
  const logits = tf.tensor2d([1, 5, 0, 9, 2, 0, 3, 9, 0, 0, 4, 9], [3, 4]);
  const { loss, accuracy } = phraseNaming(logits, pool.labels, candidates);
  // Row 0 over {0, 2}: -log(e/(e + 1)); row 1 over {1, 2}: -log(1/(1 + e^3)); row 2 over {0, 1, 2}: -log(e^4/(2 + e^4)).
  const expected = (Math.log(1 + Math.exp(-1)) + Math.log(1 + Math.exp(3)) + Math.log(1 + 2 * Math.exp(-4))) / 3;
  assert.ok(Math.abs(loss.dataSync()[0]! - expected) < 1e-5, `${loss.dataSync()[0]} vs ${expected}`);
  assert.equal(accuracy, 2 / 3); // row 1 prefers phrase 2
  tf.dispose([loss, logits]);
});

test('ape pretrain with pretrain.phraseWeight: grounding batches train the phrase loss, memory stays flat', async () => {
  const dir = await makeSynthDir(4);
  const config = pretrainConfig(dir, { output: 'pre-phrases', steps: 4, pretrain: { phraseWeight: 1 } });
  const reports: Array<{ datasets: string[]; losses: Record<string, number>; tensors: number }> = [];
  const run = await runTraining(config, {
    progress: false,
    log: () => {},
    open: (log) => Pretrainer.create(config, log),
    onStep: (r) => reports.push({ datasets: r.datasets, losses: r.losses, tensors: tf.memory().numTensors }),
  });
  run.dispose();
  const grounding = reports.filter((r) => r.datasets[0] === 'ground');
  assert.ok(grounding.length > 0 && grounding.length < reports.length, reports.map((r) => r.datasets[0]).join(', '));
  for (const r of grounding) {
    assert.ok(Number.isFinite(r.losses.phrase) && r.losses.phrase! > 0, JSON.stringify(r.losses));
    assert.ok(r.losses.phrase_accuracy! >= 0 && r.losses.phrase_accuracy! <= 1);
    assert.equal(r.losses.segmentation, undefined);
  }
  assert.equal(reports[3]!.tensors, reports[2]!.tensors, 'no tensor outlives its step');
  // Off (the default), grounding sets are not drawn.
  const off = await Pretrainer.create(pretrainConfig(dir, { output: 'pre-off' }));
  const draws = Array.from({ length: 20 }, () => off.sampler.next().dataset);
  assert.ok(draws.every((d) => d === 0));
  off.dispose();
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
