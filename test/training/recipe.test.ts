import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine } from '../../src/engine/engine.js';
import { lrMultiplierFor, unmatchedMultiplierKeys } from '../../src/training/optim/lr-multipliers.js';
import { learningRateAt, plannedSchedule } from '../../src/training/optim/schedule.js';
import { DEFAULT_TRAIN_CONFIG } from '../../src/training/config.js';
import { runTraining } from '../../src/training/run.js';
import { Trainer } from '../../src/training/trainer.js';
import { makeSynthDir, tinyConfig } from './tiny-run.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

test('lr multipliers: prefixes and * patterns, the last matching key wins, 0 is allowed', () => {
  const ape = { 'backbone.': 0.5, '*.sampling_offsets.*': 0.1, '*reference_points*': 0.1, 'model_language.': 0 };
  assert.equal(lrMultiplierFor('backbone.net.blocks.0.attn.proj.weight', ape), 0.5);
  assert.equal(lrMultiplierFor('transformer.encoder.layers.0.attentions.0.sampling_offsets.weight', ape), 0.1);
  assert.equal(lrMultiplierFor('transformer.decoder.layers.2.attentions.1.sampling_offsets.bias', ape), 0.1);
  assert.equal(lrMultiplierFor('transformer.encoder.layers.0.attentions.0.attention_weights.weight', ape), 1);
  assert.equal(lrMultiplierFor('model_language.net.text.ln_final.bias', ape), 0);
  assert.equal(lrMultiplierFor('class_embed.0.bias0', ape), 1);
  // Order: a later, more specific key overrides an earlier one.
  assert.equal(lrMultiplierFor('backbone.stem.convs.0.weight', { 'backbone.': 0.1, 'backbone.stem.': 4 }), 4);
  assert.equal(lrMultiplierFor('backbone.stem.convs.0.weight', { 'backbone.stem.': 4, 'backbone.': 0.1 }), 0.1);
  // A pattern covers the whole name: no '*' at the end means the name must end there.
  assert.equal(lrMultiplierFor('a.sampling_offsets.weight', { '*sampling_offsets': 0.1 }), 1);
  assert.equal(lrMultiplierFor('a.b', { 'a*b*b': 2 }), 1);
  assert.equal(lrMultiplierFor('a.bb', { 'a*b*b': 2 }), 2);
  assert.deepEqual(
    unmatchedMultiplierKeys(['backbone.x', 'transformer.encoder.layers.0.attentions.0.sampling_offsets.weight'], ape),
    ['*reference_points*', 'model_language.'],
  );
});

test('planned schedule: fractional milestones and the cosine length come from the plan, not from steps', () => {
  const settings = {
    ...DEFAULT_TRAIN_CONFIG.schedule,
    warmupSteps: 10,
    warmupFactor: 0.001,
    decay: 'step' as const,
    milestoneFractions: [0.8333],
    gamma: 0.1,
  };
  const s = plannedSchedule(2e-4, settings, 1200);
  assert.deepEqual(s.milestones, [1000]);
  assert.equal(learningRateAt(s, 0), 2e-4 * 0.001);
  assert.equal(learningRateAt(s, 500), 2e-4);
  assert.equal(learningRateAt(s, 999), 2e-4);
  assert.ok(Math.abs(learningRateAt(s, 1000) - 2e-5) < 1e-18);
  assert.ok(Math.abs(learningRateAt(s, 5000) - 2e-5) < 1e-18);
  // Absolute milestones join the fractional ones.
  assert.deepEqual(plannedSchedule(1, { ...settings, milestones: [300, 1000] }, 1200).milestones, [300, 1000]);
  const cos = plannedSchedule(1, { ...settings, warmupSteps: 0, decay: 'cosine', minFactor: 0 }, 100);
  assert.ok(Math.abs(learningRateAt(cos, 50) - 0.5) < 1e-12);
});

test('a run keeps its planned length when steps grow; an explicit plan that differs is refused', async () => {
  const dir = await makeSynthDir(4);
  const quiet = { progress: false, log: () => {} };
  const schedule = { warmupSteps: 0, decay: 'step', milestoneFractions: [0.5], gamma: 0.1 };
  const lrs: number[] = [];
  const first = await runTraining(tinyConfig(dir, { steps: 2, schedule }), { ...quiet, onStep: (r) => lrs.push(r.lr) });
  assert.equal(first.plannedSteps, 2);
  first.dispose();
  // Lengthened to 4: the drop stays at step 1 (half of the planned 2), it does not move to 2.
  const second = await runTraining(tinyConfig(dir, { steps: 4, schedule }), {
    ...quiet,
    onStep: (r) => lrs.push(r.lr),
  });
  assert.equal(second.plannedSteps, 2);
  second.dispose();
  assert.deepEqual(
    lrs.map((lr) => Number(lr.toExponential(6))),
    [1e-3, 1e-4, 1e-4, 1e-4],
  );
  await assert.rejects(
    Trainer.create(tinyConfig(dir, { steps: 4, schedule: { ...schedule, plannedSteps: 4 } })),
    /schedule.plannedSteps is 4, but the run in .* was planned for 2 steps/,
  );
});

test('a multiplier of 0 freezes a tower: no gradient, no update, no optimizer state', async () => {
  const dir = await makeSynthDir(4);
  const snapshot = (t: Trainer, prefix: string) =>
    [...t.network.namedParameters()]
      .filter(([k]) => k.startsWith(prefix))
      .map(([k, v]) => [k, Array.from(v.dataSync())] as const);
  const lines: string[] = [];
  const frozen = await Trainer.create(
    tinyConfig(dir, {
      output: 'frozen',
      optimizer: { lr: 1e-3, clipNorm: 1, lrMultipliers: { 'model_language.': 0, '*.sampling_offsets.*': 0.1 } },
    }),
    (l) => lines.push(l),
  );
  const before = snapshot(frozen, 'model_language.');
  assert.ok(before.length > 0);
  const offsetsBefore = snapshot(frozen, 'transformer.encoder.layers.0.attentions.0.sampling_offsets.bias');
  const headBefore = snapshot(frozen, 'class_embed.0.bias_lang');
  for (let i = 0; i < 2; i++) await frozen.trainStep();
  assert.deepEqual(snapshot(frozen, 'model_language.'), before, 'the frozen text tower did not move');
  assert.notDeepEqual(snapshot(frozen, 'class_embed.0.bias_lang'), headBefore, 'the rest trains');
  assert.notDeepEqual(
    snapshot(frozen, 'transformer.encoder.layers.0.attentions.0.sampling_offsets.bias'),
    offsetsBefore,
  );
  assert.ok(
    !frozen.optimizer.getState().moments.has('model_language.net.text.ln_final.bias'),
    'no optimizer state for frozen tensors',
  );
  assert.ok(
    lines.some((l) => /^frozen \(lr multiplier 0\): \d+ parameter tensors$/.test(l)),
    lines.join('\n'),
  );
  frozen.dispose();
});
