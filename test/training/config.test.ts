import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTrainConfig, parseTrainConfig } from '../../src/training/config.js';
import { loadPretrainConfig } from '../../src/training/pretrain/config.js';
import { trainingModelConfig } from '../../src/training/model-factory.js';
import { validateConfig } from '../../src/modeling/config.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const minimal = () => ({ output: 'run', datasets: [{ name: 'a', type: 'detection', annotations: 'x.json' }] });

test('defaults fill a minimal config; paths resolve against root relative to the file', () => {
  const c = parseTrainConfig({ ...minimal(), root: 'sub' }, '/cfg/train.json');
  assert.equal(c.output, '/cfg/sub/run');
  assert.equal(c.datasets[0]!.annotations, '/cfg/sub/x.json');
  assert.equal(c.datasets[0]!.weight, 1);
  assert.equal(c.optimizer.lr, 2e-4);
  assert.deepEqual(c.loss.weights, { cls: 1, l1: 5, giou: 2, mask: 5, dice: 5, separation: 0, pixelClass: 0 });
  const partial = parseTrainConfig({ ...minimal(), loss: { weights: { mask: 2 } } }, '/c.json');
  assert.deepEqual(partial.loss.weights, { cls: 1, l1: 5, giou: 2, mask: 2, dice: 5, separation: 0, pixelClass: 0 });
});

test('config errors name the file and the field', () => {
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ ...minimal(), stpes: 10 }, /c\.json: 'stpes' is not a known setting/],
    [{ ...minimal(), steps: 0 }, /'steps' must be a positive integer, got 0/],
    [{ ...minimal(), optimizer: { lr: 'fast' } }, /'optimizer\.lr' must be a number, got "fast"/],
    [{ ...minimal(), imageSize: 100 }, /'imageSize' must be a multiple of 32/],
    [{ ...minimal(), loss: { assignment: 'greedy' } }, /'loss\.assignment' must be hungarian or deta/],
    [{ output: 'run', datasets: [] }, /'datasets' must list at least one dataset/],
    [
      { output: 'run', datasets: [{ name: 'a', type: 'photos', annotations: 'x' }] },
      /'datasets\[0\]\.type' must be one of detection, semantic, grounding, class-agnostic/,
    ],
    [{ output: 'run', datasets: [{ name: 'a', type: 'semantic' }] }, /'datasets\[0\]' semantic sets need/],
    [
      { output: 'run', datasets: [{ name: 'a', type: 'detection', annotations: 'x', losses: { mask: true } }] },
      /'datasets\[0\]\.losses\.mask' is not a loss switch/,
    ],
    [{ ...minimal(), workers: 3 }, /'workers' must be 1 or 2/],
    [
      { ...minimal(), loss: { weights: { separation: -1 } } },
      /'loss\.weights\.separation' must be a non-negative number, got -1/,
    ],
    [{ ...minimal(), loss: { separationMargin: 1 } }, /'loss\.separationMargin' must be in \[-1, 1\), got 1/],
    [
      { ...minimal(), optimizer: { lrMultipliers: 'fast' } },
      /'optimizer\.lrMultipliers' must be an object, got "fast"/,
    ],
    [
      { ...minimal(), optimizer: { lrMultipliers: { 'backbone.': -1 } } },
      /'optimizer\.lrMultipliers\.backbone\.' must be a non-negative number, got -1/,
    ],
    [
      { ...minimal(), schedule: { milestoneFractions: [0.8, 1.2] } },
      /'schedule\.milestoneFractions' must be a list of fractions in \(0, 1\), got \[0\.8,1\.2\]/,
    ],
    [{ ...minimal(), schedule: { plannedSteps: 0 } }, /'schedule\.plannedSteps' must be a positive integer, got 0/],
    [{ ...minimal(), checkpoint: { format: 'bf16' } }, /'checkpoint\.format' must be full or compact, got "bf16"/],
    [
      { ...minimal(), loss: { denoising: { labelNoise: 2 } } },
      /'loss\.denoising\.labelNoise' must be in \[0, 1\], got 2/,
    ],
    [{ ...minimal(), loss: { denoising: { grups: 2 } } }, /'loss\.denoising\.grups' is not a known setting/],
    [
      { ...minimal(), loss: { denoising: { groups: 1.5 } } },
      /'loss\.denoising\.groups' must be a whole number, got 1\.5/,
    ],
  ];
  for (const [json, message] of bad) assert.throws(() => parseTrainConfig(json, '/c.json'), message);
});

test('every shipped config under configs/ and configs/ablations/ parses, model overrides included', () => {
  const dir = join(repo, 'configs');
  const files = [
    ...readdirSync(dir).filter((f) => f.endsWith('.json')),
    ...readdirSync(join(dir, 'ablations'))
      .filter((f) => f.endsWith('.json'))
      .map((f) => join('ablations', f)),
  ];
  assert.ok(files.includes('default-synth.json'));
  assert.ok(files.includes(join('ablations', 'a5-pretrained.json')));
  for (const f of files) {
    // Pretraining configs (a `pretrain` section) are read by ape pretrain.
    const isPretrain = 'pretrain' in JSON.parse(readFileSync(join(dir, f), 'utf8'));
    const c = isPretrain ? loadPretrainConfig(join(dir, f)) : loadTrainConfig(join(dir, f));
    assert.ok(c.datasets.length > 0, f);
    const model = trainingModelConfig(c.model.preset, c.model.overrides, c.imageSize, c.model.textVocabSize);
    assert.doesNotThrow(() => validateConfig(model), f);
  }
  assert.ok(files.includes('pretrain-synth.json'));
});
