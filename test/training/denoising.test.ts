import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import type { ImageTargets } from '../../src/data/batch.js';
import { defaultLossSwitches } from '../../src/data/sampler/loss-switches.js';
import { loadModel } from '../../src/inference/model-files.js';
import type { ApeNetwork, ApeRawOutput } from '../../src/modeling/ape-network.js';
import type { DenoisingInput } from '../../src/modeling/denoising-queries.js';
import { computeLosses, DEFAULT_CRITERION } from '../../src/training/criterion.js';
import { denoisingAttentionMask, denoisingBatch, noisedBox } from '../../src/training/denoising.js';
import { runTraining } from '../../src/training/run.js';
import { Trainer } from '../../src/training/trainer.js';
import { Rng } from '../../src/util/random.js';
import { makeSynthDir, tinyConfig } from './tiny-run.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

/** A generator that returns the given numbers in turn (for noise by hand). */
function scripted(values: number[]): Rng {
  let i = 0;
  return {
    next: () => values[i++]!,
    int: (lo: number, hi: number) => lo + Math.floor(values[i++]! * (hi - lo + 1)),
  } as unknown as Rng;
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6) =>
  a.length === b.length && Array.from(a).every((x, i) => Math.abs(x - b[i]!) <= tol);

test('box noise by hand: each edge moves by u half-sizes (u < 1 positive, 1 <= u < 2 negative), clamped', () => {
  // Box edges x0 0.4, y0 0.3, x1 0.6, y1 0.7; half sizes 0.1, 0.2. Per edge: a sign draw (< 0.5 is -), then u.
  const draws = [0.2, 0.5, 0.7, 0.25, 0.7, 0.5, 0.2, 0.75];
  const box = [0.5, 0.5, 0.2, 0.4];
  // Positive: x0 0.4 - 0.05, y0 0.3 + 0.05, x1 0.6 + 0.05, y1 0.7 - 0.15.
  assert.ok(close(noisedBox(box, false, 1, scripted(draws)), [0.5, 0.45, 0.3, 0.2]));
  // Negative (u + 1): x0 0.25, y0 0.55, x1 0.75, y1 0.35: the y edges crossed, the height is 0.
  assert.ok(close(noisedBox(box, true, 1, scripted(draws)), [0.5, 0.45, 0.5, 0]));
  // Scale 0.5 halves the moves; edges stop at the image border.
  assert.ok(close(noisedBox(box, false, 0.5, scripted(draws)), [0.5, 0.475, 0.25, 0.3]));
  const corner = noisedBox([0.05, 0.05, 0.1, 0.1], true, 1, scripted([0.2, 0.9, 0.2, 0.9, 0.9, 0.9, 0.9, 0.9]));
  // A negative at the corner: the left and top edges stop at 0, the others move 1.9 half sizes.
  assert.ok(close(corner, [0.0975, 0.0975, 0.195, 0.195]), Array.from(corner).join(', '));

  // Over many draws: positives inside the half-size band of every edge, negatives outside it.
  const rng = new Rng(3);
  for (let k = 0; k < 500; k++) {
    const b = [0.3 + 0.4 * rng.next(), 0.3 + 0.4 * rng.next(), 0.05 + 0.2 * rng.next(), 0.05 + 0.2 * rng.next()];
    const edges = (x: ArrayLike<number>) => [
      x[0]! - x[2]! / 2,
      x[1]! - x[3]! / 2,
      x[0]! + x[2]! / 2,
      x[1]! + x[3]! / 2,
    ];
    const half = [b[2]! / 2, b[3]! / 2, b[2]! / 2, b[3]! / 2];
    const pos = edges(noisedBox(b, false, 1, rng));
    const neg = noisedBox(b, true, 1, rng);
    edges(b).forEach((e, i) => assert.ok(Math.abs(pos[i]! - e) < half[i]! + 1e-6, `positive edge ${i}`));
    // A negative's edges each moved by at least a half size (unless they crossed: then its size is 0).
    if (neg[2]! > 0 && neg[3]! > 0)
      edges(b).forEach((e, i) => {
        const moved = Math.abs(edges(neg)[i]! - e);
        assert.ok(moved >= half[i]! - 1e-6 || edges(neg)[i] === 0 || edges(neg)[i] === 1, `negative edge ${i}`);
      });
  }
});

const target = (labels: number[], boxes: number[], promptWeights: number[] | null = null): ImageTargets => ({
  labels: Int32Array.from(labels),
  boxes: Float32Array.from(boxes),
  masks: null,
  promptWeights: promptWeights ? Float32Array.from(promptWeights) : null,
  positiveOnlyPrompts: [],
  width: 64,
  height: 64,
});

test('denoising queries: groups of positives then negatives, padding, pairs, label noise among the image own prompts', () => {
  const targets = [
    target([2, 0], [0.3, 0.3, 0.2, 0.2, 0.7, 0.7, 0.2, 0.2]),
    target([1], [0.5, 0.5, 0.4, 0.4], [0, 1, 0, 1]),
  ];
  const config = { groups: 2, labelNoise: 0, boxNoise: 1, maxQueries: 100 };
  const dn = denoisingBatch(targets, 4, 3, config, new Rng(1))!;
  assert.equal(dn.groups, 2);
  assert.equal(dn.span, 2);
  assert.equal(dn.input.count, 8); // 2 groups x (2 positives + 2 negatives)
  assert.deepEqual(dn.matches, [
    { queries: [0, 1, 4, 5], targets: [0, 1, 0, 1] },
    { queries: [0, 4], targets: [0, 0] },
  ]);
  assert.deepEqual(Array.from(dn.input.labels), [2, 0, 2, 0, 2, 0, 2, 0, 1, -1, 1, -1, 1, -1, 1, -1]);
  // Image 1's second slot of each half is padding: a zero box.
  for (const q of [1, 3, 5, 7])
    assert.deepEqual(Array.from(dn.input.boxes.subarray((8 + q) * 4, (9 + q) * 4)), [0, 0, 0, 0]);
  assert.equal(dn.input.blocked.length, 2 * 11 * 11);
  // maxQueries bounds the groups (one at least); no targets, no queries.
  assert.equal(denoisingBatch(targets, 4, 3, { ...config, maxQueries: 7 }, new Rng(1))!.groups, 1);
  assert.equal(denoisingBatch(targets, 4, 3, { ...config, maxQueries: 1 }, new Rng(1))!.groups, 1);
  assert.equal(denoisingBatch([target([], [])], 4, 3, config, new Rng(1)), null);
  // Label noise 1: half the labels redrawn, each among the prompts the image trains (weight > 0).
  const noisy = denoisingBatch(targets, 4, 3, { ...config, groups: 50, maxQueries: 1000, labelNoise: 1 }, new Rng(2))!;
  const labels = Array.from(noisy.input.labels);
  const image1 = labels.slice(noisy.input.count).filter((l) => l >= 0);
  assert.ok(image1.every((l) => l === 1 || l === 3));
  const changed = image1.filter((l) => l === 3).length / image1.length;
  assert.ok(changed > 0.15 && changed < 0.35, `share relabelled to the other own prompt ${changed} (expected 0.25)`);
  // Class-agnostic targets keep no label.
  const agnostic = denoisingBatch(
    [target([-1], [0.5, 0.5, 0.2, 0.2])],
    1,
    3,
    { ...config, labelNoise: 1 },
    new Rng(1),
  )!;
  assert.deepEqual(Array.from(agnostic.input.labels), [-1, -1, -1, -1]);
});

test('attention mask by hand: proposals see no denoising query, groups do not see each other, padding is seen by none', () => {
  // 2 groups of span 1, 2 proposal queries: columns 0-1 group 0, 2-3 group 1, 4-5 proposals.
  const m = denoisingAttentionMask(2, 1, [1, 0], 2);
  const rows = (image: number) =>
    Array.from({ length: 6 }, (_, r) => Array.from(m.subarray((image * 6 + r) * 6, (image * 6 + r + 1) * 6)).join(''));
  assert.deepEqual(rows(0), ['001100', '001100', '110000', '110000', '111100', '111100']);
  // The second image has no target: every denoising query is padding.
  assert.deepEqual(rows(1), ['111100', '111100', '111100', '111100', '111100', '111100']);
});

test('the loss terms of the denoising queries by hand: positives as matched queries, negatives as no object, over targets x groups', () => {
  tf.engine().startScope();
  const mask = new Uint8Array(64);
  for (let y = 0; y < 4; y++) for (let x = 0; x < 8; x++) mask[y * 8 + x] = 1; // top half of an 8x8 canvas
  const t: ImageTargets = { ...target([1], [0.5, 0.5, 0.2, 0.2]), masks: [mask], width: 8, height: 8 };
  const main = {
    logits: tf.tensor3d([0.5, -1, -2, 1.5], [1, 2, 2]),
    boxes: tf.tensor3d([0.2, 0.2, 0.1, 0.1, 0.5, 0.5, 0.2, 0.2], [1, 2, 4]),
    masks: tf.zeros([1, 2, 2, 2]) as tf.Tensor4D,
  };
  // Two groups: queries 0 and 2 positive (query 2 off by 0.1 in x), 1 and 3 negative (their boxes never count).
  const dnLayer = {
    logits: tf.zeros([1, 4, 2]) as tf.Tensor3D,
    boxes: tf.tensor3d([0.5, 0.5, 0.2, 0.2, 0.1, 0.1, 0.9, 0.9, 0.6, 0.5, 0.2, 0.2, 0.9, 0.9, 0.1, 0.1], [1, 4, 4]),
    masks: tf.zeros([1, 4, 2, 2]) as tf.Tensor4D,
  };
  const denoising = { layers: [dnLayer, dnLayer], matches: [{ queries: [0, 2], targets: [0, 0] }], groups: 2 };
  const switches = defaultLossSwitches('detection', true);
  const config = { ...DEFAULT_CRITERION, denoising: { groups: 2, labelNoise: 0.5, boxNoise: 1, maxQueries: 100 } };
  const plain = computeLosses({ layers: [main, main] }, [t], switches, config, new Rng(1));
  const withDn = computeLosses({ layers: [main, main], denoising }, [t], switches, config, new Rng(1));
  const v = (name: string) => withDn.terms.get(name)!.dataSync()[0]!;
  // Logits 0 (p = 1/2): a positive entry costs 0.25 (1/2)^2 ln 2, a negative one 0.75 (1/2)^2 ln 2.
  const pos = 0.25 * 0.25 * Math.log(2);
  const neg = 0.75 * 0.25 * Math.log(2);
  assert.ok(Math.abs(v('dn_class') - (2 * pos + 6 * neg) / 2) < 1e-6, `dn_class ${v('dn_class')}`);
  assert.ok(Math.abs(v('dn_class_0') - v('dn_class')) < 1e-7);
  assert.ok(Math.abs(v('dn_l1') - 0.1 / 2) < 1e-6, `dn_l1 ${v('dn_l1')}`);
  // Query 2 against the target: IoU 1/3 and the enclosing box is the union, so 1 - GIoU = 2/3.
  assert.ok(Math.abs(v('dn_giou') - 2 / 3 / 2) < 1e-5, `dn_giou ${v('dn_giou')}`);
  // Masks: logits 0 against the top half: BCE ln 2 per mask, dice 1 - (2 * 1 + 1) / (2 + 2 + 1).
  assert.ok(Math.abs(v('dn_mask') - Math.log(2)) < 1e-6, `dn_mask ${v('dn_mask')}`);
  assert.ok(Math.abs(v('dn_dice') - (1 - 3 / 5)) < 1e-6, `dn_dice ${v('dn_dice')}`);
  assert.ok(!withDn.terms.has('dn_mask_0'));
  // The proposal queries' terms are untouched, and the total adds the weighted denoising terms.
  for (const [name, value] of plain.terms)
    assert.equal(withDn.terms.get(name)!.dataSync()[0], value.dataSync()[0], name);
  const added = 2 * v('dn_class') + 2 * (5 * v('dn_l1') + 2 * v('dn_giou')) + 5 * v('dn_mask') + 5 * v('dn_dice');
  assert.ok(Math.abs(withDn.total.dataSync()[0]! - plain.total.dataSync()[0]! - added) < 1e-5);
  // Class-agnostic batches: boxes only.
  const agnostic = computeLosses(
    { layers: [main], denoising: { ...denoising, layers: [dnLayer] } },
    [{ ...t, labels: Int32Array.from([-1]) }],
    defaultLossSwitches('class-agnostic', false),
    config,
    new Rng(1),
  );
  assert.deepEqual(
    [...agnostic.terms.keys()].filter((k) => k.startsWith('dn_')),
    ['dn_l1', 'dn_giou'],
  );
  tf.engine().endScope();
});

/** The decoder outputs of a forward with the given denoising queries (or none), on the host. */
function decoderOutputs(network: ApeNetwork, input: DenoisingInput | null) {
  const images = tf.tidy(() => tf.mul(tf.randomUniform([1, 64, 64, 3], 0, 1, 'float32', 7), 255) as tf.Tensor4D);
  const out: ApeRawOutput = network.forward(
    { images, sizes: [[64, 64]] },
    { vocabulary: ['circle', 'square'] },
    {
      layers: 'all',
      masks: 'last',
      denoising: input,
    },
  );
  const read = (layers: ApeRawOutput['layers'] | null) =>
    (layers ?? []).map((l) => ({ logits: l.logits.dataSync(), boxes: l.boxes.dataSync(), masks: l.masks?.dataSync() }));
  const result = { layers: read(out.layers), denoising: read(out.denoising), references: out.references };
  out.dispose();
  images.dispose();
  return result;
}

test('the decoder with denoising queries: the proposal queries compute what they compute without them; groups are apart', async () => {
  const dir = await makeSynthDir(2);
  const trainer = await Trainer.create(tinyConfig(dir));
  const network = trainer.network;
  const q = network.config.transformer.proposals.numQueries;
  const targets = [target([0, 1], [0.3, 0.3, 0.2, 0.2, 0.6, 0.6, 0.3, 0.2])];
  const dn = denoisingBatch(targets, 2, q, { groups: 2, labelNoise: 0.5, boxNoise: 1, maxQueries: 100 }, new Rng(4))!;
  const without = decoderOutputs(network, null); // also fills the prompt-embedding cache
  const before = tf.memory().numTensors;
  const withDn = decoderOutputs(network, dn.input);
  assert.equal(tf.memory().numTensors, before, 'no tensor outlives the forward');
  assert.equal(without.denoising.length, 0);
  assert.equal(withDn.denoising.length, without.layers.length);
  assert.deepEqual(withDn.references, without.references);
  without.layers.forEach((l, i) => {
    const other = withDn.layers[i]!;
    assert.ok(close(other.logits, l.logits, 1e-5), `layer ${i} logits`);
    assert.ok(close(other.boxes, l.boxes, 1e-6), `layer ${i} boxes`);
    if (l.masks) assert.ok(close(other.masks!, l.masks, 1e-4), `layer ${i} masks`);
  });
  assert.equal(withDn.denoising[0]!.boxes.length, dn.input.count * 4);

  // Moving group 1's boxes changes group 1's outputs, not group 0's (queries 0-3 of 8).
  const moved = { ...dn.input, boxes: dn.input.boxes.slice() };
  for (let k = 4 * 4; k < 8 * 4; k += 4) moved.boxes[k] = Math.min(0.9, moved.boxes[k]! + 0.1);
  const shifted = decoderOutputs(network, moved);
  const last = withDn.denoising.length - 1;
  const group = (x: Float32Array | Int32Array | Uint8Array, g: number, per: number) =>
    Array.from(x).slice(g * 4 * per, (g + 1) * 4 * per);
  const a = withDn.denoising[last]!;
  const b = shifted.denoising[last]!;
  assert.ok(close(group(b.logits, 0, 2), group(a.logits, 0, 2), 1e-5), 'group 0 logits unchanged');
  assert.ok(close(group(b.boxes, 0, 4), group(a.boxes, 0, 4), 1e-6), 'group 0 boxes unchanged');
  assert.ok(!close(group(b.boxes, 1, 4), group(a.boxes, 1, 4), 1e-4), 'group 1 boxes moved');
  assert.ok(close(shifted.layers[last]!.boxes, withDn.layers[last]!.boxes, 1e-6), 'proposal queries unchanged');
  trainer.dispose();
});

test('ape train with loss.denoising: the dn terms train, memory stays flat, the model and its predictions are those of the plain run', async () => {
  const dir = await makeSynthDir(6);
  const quiet = { progress: false, log: () => {} };
  const plain = tinyConfig(dir, { steps: 3, output: 'plain' });
  const config = tinyConfig(dir, { steps: 3, output: 'dn', loss: { denoising: { groups: 2 } } });
  assert.deepEqual(config.loss.denoising, { groups: 2, labelNoise: 0.5, boxNoise: 1, maxQueries: 200 });
  const a = await Trainer.create(plain);
  const b = await Trainer.create(config);
  // The switch adds no parameter: both start from the same weights, under the same names.
  const params = (t: Trainer) =>
    new Map([...t.network.namedParameters()].map(([k, v]) => [k, Array.from(v.dataSync())]));
  assert.deepEqual(params(b), params(a));
  assert.deepEqual(b.modelConfig, a.modelConfig);
  a.dispose();
  b.dispose();

  const reports: Array<{ losses: Record<string, number>; tensors: number }> = [];
  const run = await runTraining(config, {
    ...quiet,
    onStep: (r) => reports.push({ losses: r.losses, tensors: tf.memory().numTensors }),
  });
  assert.equal(reports.length, 3);
  assert.ok(
    reports.some((r) => r.losses.dn_l1 !== undefined && r.losses.dn_giou !== undefined),
    JSON.stringify(reports.map((r) => Object.keys(r.losses))),
  );
  for (const r of reports) for (const [k, v] of Object.entries(r.losses)) assert.ok(Number.isFinite(v), `${k} ${v}`);
  assert.equal(reports[2]!.tensors, reports[1]!.tensors, 'no tensor outlives its step');

  // Inference: the exported model folder predicts exactly what the trained network does without denoising.
  const loaded = await loadModel(Trainer.modelDir(config));
  const expected = decoderOutputs(run.network, null);
  const got = decoderOutputs(loaded, null);
  got.layers.forEach((l, i) => {
    assert.deepEqual(l.logits, expected.layers[i]!.logits);
    assert.deepEqual(l.boxes, expected.layers[i]!.boxes);
  });
  loaded.dispose();
  run.dispose();
});
