import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import { computeLosses, DEFAULT_CRITERION } from '../../src/training/criterion.js';
import { defaultLossSwitches } from '../../src/data/sampler/loss-switches.js';
import type { ImageTargets } from '../../src/data/batch.js';
import { Rng } from '../../src/util/random.js';

before(async () => {
  await initEngine({ backend: 'cpu' });
});

const focal = (x: number, t: number) => {
  const p = 1 / (1 + Math.exp(-x));
  const ce = -(t * Math.log(p) + (1 - t) * Math.log(1 - p));
  const pt = p * t + (1 - p) * (1 - t);
  return (t ? 0.25 : 0.75) * (1 - pt) ** 2 * ce;
};

test('criterion: terms equal the hand-computed losses of the matched query', () => {
  // One image, two queries, two prompts; the target (prompt 1) sits exactly on query 1's box.
  const logits = [0.5, -1, -2, 1.5];
  const layer = {
    logits: tf.tensor3d(logits, [1, 2, 2]),
    boxes: tf.tensor3d([0.2, 0.2, 0.1, 0.1, 0.6, 0.6, 0.2, 0.2], [1, 2, 4]),
    masks: tf.tensor4d([2, -2, -2, -2, 0, 0, 0, 0], [1, 2, 2, 2]),
  };
  const mask = new Uint8Array(64);
  for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) mask[y * 8 + x] = 1; // top-left quarter of an 8x8 canvas
  const targets: ImageTargets[] = [
    {
      labels: Int32Array.from([1]),
      boxes: Float32Array.from([0.6, 0.6, 0.2, 0.2]),
      masks: [mask],
      promptWeights: null,
      positiveOnlyPrompts: [],
      width: 8,
      height: 8,
    },
  ];
  const { total, terms } = computeLosses(
    { layers: [layer, layer] },
    targets,
    defaultLossSwitches('detection', true),
    DEFAULT_CRITERION,
    new Rng(1),
  );
  const v = (n: string) => terms.get(n)!.dataSync()[0]!;
  const cls = focal(0.5, 0) + focal(-1, 0) + focal(-2, 0) + focal(1.5, 1);
  assert.ok(Math.abs(v('class') - cls) < 1e-6, `${v('class')} vs ${cls}`);
  assert.ok(Math.abs(v('class_0') - cls) < 1e-6);
  assert.ok(Math.abs(v('l1')) < 1e-6);
  assert.ok(Math.abs(v('giou')) < 1e-5); // the GIoU's epsilon guards leave ~2e-6
  // Query 1's mask logits are all 0 against target [1, 0, 0, 0] (area-averaged 8x8 -> 2x2).
  assert.ok(Math.abs(v('mask') - Math.log(2)) < 1e-6, `mask ${v('mask')}`);
  assert.ok(Math.abs(v('dice') - (1 - (2 * 0.5 + 1) / (2 + 1 + 1))) < 1e-6);
  assert.ok(!terms.has('mask_0')); // masks on the last layer only
  const expected = 2 * cls + 5 * Math.log(2) + 5 * 0.5;
  assert.ok(Math.abs(total.dataSync()[0]! - expected) < 1e-5);
});

test("criterion: weights drop other images' prompts; class-agnostic batches skip the class loss", () => {
  const layer = { logits: tf.tensor3d([3, 3], [1, 1, 2]), boxes: tf.tensor3d([0.5, 0.5, 0.2, 0.2], [1, 1, 4]) };
  const targets: ImageTargets[] = [
    {
      labels: Int32Array.from([0]),
      boxes: Float32Array.from([0.5, 0.5, 0.2, 0.2]),
      masks: null,
      promptWeights: Float32Array.from([1, 0]),
      positiveOnlyPrompts: [],
      width: 8,
      height: 8,
    },
  ];
  const r = computeLosses(
    { layers: [layer] },
    targets,
    defaultLossSwitches('detection', false),
    DEFAULT_CRITERION,
    new Rng(1),
  );
  assert.ok(Math.abs(r.terms.get('class')!.dataSync()[0]! - focal(3, 1)) < 1e-6);
  const agnostic = computeLosses(
    { layers: [layer] },
    [{ ...targets[0]!, labels: Int32Array.from([-1]) }],
    defaultLossSwitches('class-agnostic', false),
    DEFAULT_CRITERION,
    new Rng(1),
  );
  assert.ok(!agnostic.terms.has('class'));
  assert.ok(agnostic.terms.has('l1'));
});

test('criterion: encoder proposals get class-agnostic focal and box losses', () => {
  const layer = { logits: tf.tensor3d([0], [1, 1, 1]), boxes: tf.tensor3d([0.5, 0.5, 0.2, 0.2], [1, 1, 4]) };
  const encoder = {
    logits: tf.tensor2d([1, -1, 0], [1, 3]),
    boxes: tf.tensor3d([0.1, 0.1, 0.1, 0.1, 0.5, 0.5, 0.2, 0.2, 0.9, 0.9, 0.1, 0.1], [1, 3, 4]),
  };
  const targets: ImageTargets[] = [
    {
      labels: Int32Array.from([0]),
      boxes: Float32Array.from([0.5, 0.5, 0.2, 0.2]),
      masks: null,
      promptWeights: null,
      positiveOnlyPrompts: [],
      width: 8,
      height: 8,
    },
  ];
  const r = computeLosses(
    { layers: [layer], encoder },
    targets,
    defaultLossSwitches('detection', false),
    DEFAULT_CRITERION,
    new Rng(1),
  );
  const expected = focal(1, 0) + focal(-1, 1) + focal(0, 0);
  assert.ok(Math.abs(r.terms.get('enc_class')!.dataSync()[0]! - expected) < 1e-6);
  assert.ok(Math.abs(r.terms.get('enc_l1')!.dataSync()[0]!) < 1e-6);
});

test('criterion: the separation term joins the total with its weight, and is off by default', () => {
  const layer = { logits: tf.tensor3d([3, 3], [1, 1, 2]), boxes: tf.tensor3d([0.5, 0.5, 0.2, 0.2], [1, 1, 4]) };
  const targets: ImageTargets[] = [
    {
      labels: Int32Array.from([0]),
      boxes: Float32Array.from([0.5, 0.5, 0.2, 0.2]),
      masks: null,
      promptWeights: null,
      positiveOnlyPrompts: [],
      width: 8,
      height: 8,
    },
  ];
  // Two prompts at 60 degrees: cosine 0.5, margin 0.2 -> each pays 0.09.
  const textEmbeddings = {
    vectors: tf.tensor2d([
      [1, 0],
      [0.5, Math.sqrt(3) / 2],
    ]),
    texts: ['circle', 'square'],
  };
  const switches = defaultLossSwitches('detection', false);
  const off = computeLosses({ layers: [layer], textEmbeddings }, targets, switches, DEFAULT_CRITERION, new Rng(1));
  assert.ok(!off.terms.has('separation'));
  const config = { ...DEFAULT_CRITERION, weights: { ...DEFAULT_CRITERION.weights, separation: 2 } };
  const on = computeLosses({ layers: [layer], textEmbeddings }, targets, switches, config, new Rng(1));
  assert.ok(Math.abs(on.terms.get('separation')!.dataSync()[0]! - 0.09) < 1e-6);
  assert.ok(Math.abs(on.total.dataSync()[0]! - off.total.dataSync()[0]! - 2 * 0.09) < 1e-5);
});
