import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/engine.js';
import type { BoxXYXY } from '../../src/data/types.js';
import { parsePretrainConfig, type PretrainConfig } from '../../src/training/pretrain/config.js';
import { cropPixels, cropRegion, placeCrop } from '../../src/training/pretrain/object-crop.js';
import { Pretrainer } from '../../src/training/pretrain/pretrainer.js';
import { openProbeFolder } from '../../src/training/pretrain/shape-probe.js';
import { augmentPicks, ThingCropWalk, thingObjects } from '../../src/training/pretrain/thing-crops.js';
import { Rng } from '../../src/util/random.js';
import { runTraining } from '../../src/training/run.js';
import type { StepReport } from '../../src/training/trainer.js';
import { makeSynthDir, TINY_TEST_MODEL, tinyConfigJson } from './tiny-run.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

/** A 4x3 image whose channel c at (x, y) is 100c + 10y + x; identity normalisation. */
const image = {
  width: 4,
  height: 3,
  data: Uint8Array.from({ length: 36 }, (_, i) => {
    const c = i % 3;
    const p = (i - c) / 3;
    return 100 * c + 10 * Math.floor(p / 4) + (p % 4);
  }),
};
const identity = [0, 0, 0] as const;
const one = [1, 1, 1] as const;

/** Channel c of a crop as rows, values rounded to 1e-4. */
function channel(pixels: Float32Array, size: number, c: number): number[][] {
  return Array.from({ length: size }, (_, r) =>
    Array.from({ length: size }, (_, u) => +pixels[(r * size + u) * 3 + c]!.toFixed(4)),
  );
}

function rows(region: Uint8Array, size: number): number[][] {
  return Array.from({ length: size }, (_, r) => Array.from(region.subarray(r * size, (r + 1) * size)));
}

test('object crops by hand: centred on the box at scale 1, zero beyond the image edges, flips, scale, regions', () => {
  // Box at the bottom-right corner: centre (3, 2), so the 4x4 crop starts at (1, 0) and its last
  // column and row lie beyond the image.
  const box: BoxXYXY = [2, 1, 4, 3];
  const at = placeCrop(box, 4, 1, false);
  assert.deepEqual(at, { left: 1, top: 0, size: 4, scale: 1, flip: false });
  const pixels = cropPixels(image, at, identity, one);
  assert.deepEqual(channel(pixels, 4, 0), [
    [1, 2, 3, 0],
    [11, 12, 13, 0],
    [21, 22, 23, 0],
    [0, 0, 0, 0],
  ]);
  assert.deepEqual(channel(pixels, 4, 2)[1], [211, 212, 213, 0]);
  // Normalised per channel; the outside stays 0 (the network's padding after normalisation).
  const normed = cropPixels(image, at, [1, 2, 3], [2, 2, 2]);
  assert.deepEqual(channel(normed, 4, 1)[0], [(101 - 2) / 2, (102 - 2) / 2, (103 - 2) / 2, 0]);
  // Flipped: column u shows column 3 - u of the unflipped crop.
  const flipped = cropPixels(image, { ...at, flip: true }, identity, one);
  assert.deepEqual(channel(flipped, 4, 0)[0], [0, 3, 2, 1]);
  // Top-left corner: centre (0.5, 0.5) rounds the window to start at (-1, -1).
  const corner = placeCrop([0, 0, 1, 1], 4, 1, false);
  assert.deepEqual([corner.left, corner.top], [-1, -1]);
  assert.deepEqual(channel(cropPixels(image, corner, identity, one), 4, 0), [
    [0, 0, 0, 0],
    [0, 0, 1, 2],
    [0, 10, 11, 12],
    [0, 20, 21, 22],
  ]);
  // Scale 2: crop pixel u samples source x = (u + 0.5) / 2 between pixel centres, clamped at the edge.
  const twice = placeCrop([0, 0, 2, 2], 4, 2, false);
  assert.deepEqual([twice.left, twice.top], [0, 0]);
  assert.deepEqual(channel(cropPixels(image, twice, identity, one), 4, 0).slice(0, 2), [
    [0, 0.25, 0.75, 1.25],
    [2.5, 2.75, 3.25, 3.75],
  ]);
  // Shifted by (-1, 1): the window moves with the centre, (0, 1) here.
  const moved = placeCrop(box, 4, 1, false, [-1, 1]);
  assert.deepEqual([moved.left, moved.top], [0, 1]);
  assert.deepEqual(channel(cropPixels(image, moved, identity, one), 4, 0)[0], [10, 11, 12, 13]);

  // The region: the mask where it reaches the crop, else the box.
  const mask = new Uint8Array(12);
  mask[2 * 4 + 3] = 1; // pixel (3, 2)
  assert.deepEqual(rows(cropRegion(mask, box, 4, 3, at), 4), [
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 1, 0],
    [0, 0, 0, 0],
  ]);
  const boxOnly = [
    [0, 0, 0, 0],
    [0, 1, 1, 0],
    [0, 1, 1, 0],
    [0, 0, 0, 0],
  ];
  assert.deepEqual(rows(cropRegion(undefined, box, 4, 3, at), 4), boxOnly);
  const elsewhere = new Uint8Array(12);
  elsewhere[0] = 1; // pixel (0, 0), left of the crop
  assert.deepEqual(rows(cropRegion(elsewhere, box, 4, 3, at), 4), boxOnly);
  assert.deepEqual(rows(cropRegion(mask, box, 4, 3, { ...at, flip: true }), 4)[2], [0, 1, 0, 0]);
});

test('the crop walk: each epoch takes every thing object once, image by image, in a seeded order', async () => {
  const dir = await makeSynthDir(5);
  const dataset = openProbeFolder(join(dir, 'synth'));
  const things = thingObjects(dataset);
  const walk = new ThingCropWalk(dataset, 7);
  const expected = things.flat().map((o) => `${o.image}/${o.annotation}`);
  assert.equal(walk.total, expected.length);
  for (const o of things.flat()) {
    const a = dataset.image(o.image).annotations[o.annotation]!;
    assert.ok(dataset.isThing[dataset.categoryIndex.get(a.categoryId)!], 'things only');
  }
  const steps = Math.ceil((2 * walk.total) / 3);
  const seen = Array.from({ length: steps }, (_, t) => walk.objectsAt(t, 3)).flat();
  const epoch0 = seen.slice(0, walk.total);
  const epoch1 = seen.slice(walk.total, 2 * walk.total);
  assert.deepEqual(epoch0.map((o) => `${o.image}/${o.annotation}`).sort(), [...expected].sort());
  assert.deepEqual(epoch1.map((o) => `${o.image}/${o.annotation}`).sort(), [...expected].sort());
  // An image's things are taken together: the image changes once per image in an epoch.
  const changes = epoch0.filter((o, i) => i > 0 && o.image !== epoch0[i - 1]!.image).length;
  assert.equal(changes, things.filter((t) => t.length > 0).length - 1);
  // A function of (seed, step): another walk gives the same objects, another seed another order.
  assert.deepEqual(new ThingCropWalk(dataset, 7).objectsAt(1, 3), walk.objectsAt(1, 3));
  const other = new ThingCropWalk(dataset, 8);
  assert.notDeepEqual(Array.from({ length: steps }, (_, t) => other.objectsAt(t, 3)).flat(), seen);
  // Augmentation per object: the image's fit (64 px images on a 128 canvas: 2) times the jitter, flips, integer shifts.
  const picks = augmentPicks(dataset, Array(400).fill(seen[0]), new Rng(1), {
    imageSize: 128,
    flipProbability: 0.5,
    scaleRange: [0.8, 1.25],
    crop: true,
    shift: 3,
  });
  const shifts = new Set(picks.flatMap((p) => p.shift));
  assert.deepEqual(
    [...shifts].sort((a, b) => a - b),
    [-3, -2, -1, 0, 1, 2, 3],
  );
  assert.ok(picks.every((p) => p.scale >= 1.6 && p.scale < 2.5));
  const flips = picks.filter((p) => p.flip).length;
  assert.ok(flips > 150 && flips < 250, `${flips} flips of 400`);
  const capped = augmentPicks(dataset, [seen[0]!], new Rng(1), {
    imageSize: 64,
    flipProbability: 0,
    scaleRange: [2, 2],
    crop: false,
    shift: 0,
  });
  assert.equal(capped[0]!.scale, 1, 'without cropping an image is never shown past its fit');
});

const STEM_MODEL = {
  ...TINY_TEST_MODEL,
  backbone: { ...TINY_TEST_MODEL.backbone, stem: { channels: [8, 16, 16, 16] } },
};

function cropConfig(
  dir: string,
  extra: Record<string, unknown> = {},
  crops: Record<string, unknown> = {},
): PretrainConfig {
  const json = {
    ...tinyConfigJson(dir),
    output: 'pre-crops',
    steps: 2,
    model: { preset: 'tiny', textVocabSize: 256, overrides: STEM_MODEL },
    augment: { flipProbability: 0.5, scaleRange: [0.8, 1.25], crop: true, minSize: 2 },
    pretrain: {
      levels: ['p3', 'p4'],
      stemCrops: { steps: 3, batchSize: 8, cropSize: 32, lr: 1e-2, warmupSteps: 0, ...crops },
    },
    ...extra,
  };
  const file = join(dir, 'pretrain-crops.json');
  writeFileSync(file, JSON.stringify(json));
  return parsePretrainConfig(json, file);
}

test('stem-crop stage: trains the stem, its projections and the text tower (not the ViT) and its naming loss falls', async () => {
  const dir = await makeSynthDir(4);
  // Every step shows the same crops (no flip, scale jitter or shift; one step takes the whole walk), so the loss must fall.
  const probe = await Pretrainer.create(cropConfig(dir, { output: 'probe' }));
  const total = probe.cropStage!.walk.total;
  probe.dispose();
  const config = cropConfig(
    dir,
    { output: 'pre-crops-fall', augment: { flipProbability: 0, scaleRange: [1, 1], crop: true, minSize: 2 } },
    { steps: 9, batchSize: total, lr: 3e-3, shift: 0 },
  );
  const run = await Pretrainer.create(config);
  const before = new Map([...run.network.namedParameters()].map(([k, v]) => [k, Array.from(v.dataSync())]));
  const reports: StepReport[] = [];
  const tensors: number[] = [];
  for (let i = 0; i < 8; i++) {
    reports.push(await run.trainStep());
    tensors.push(tf.memory().numTensors);
  }
  assert.equal(tensors[7], tensors[6], 'no tensor outlives its step');
  const losses = reports.map((r) => r.losses.crop!);
  for (const r of reports) {
    assert.equal(r.losses.total, r.losses.crop);
    assert.ok(Math.abs(r.losses.crop! - (r.losses.crop_p3! + r.losses.crop_p4!) / 2) < 1e-5);
    assert.equal(r.losses.crop_accuracy, (r.losses.crop_accuracy_p3! + r.losses.crop_accuracy_p4!) / 2);
    assert.equal(r.losses.segmentation, undefined);
    assert.equal(r.lr, 3e-3);
  }
  assert.ok(losses[7]! < 0.6 * losses[0]!, `crop loss ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  const after = run.network.namedParameters();
  const moved = (name: string) => {
    const want = before.get(name)!;
    return Array.from(after.get(name)!.dataSync()).some((v, i) => v !== want[i]);
  };
  for (const name of [
    'backbone.stem.convs.0.weight',
    'backbone.stem.convs.3.weight',
    'backbone.stem.proj_p3.weight',
    'backbone.stem.proj_p4.weight',
    'model_language.net.text.ln_final.weight',
  ])
    assert.ok(moved(name), `${name} was trained`);
  for (const name of ['backbone.net.blocks.0.attn.q_proj.weight', 'backbone.simfp_3.1.weight'])
    assert.ok(!moved(name), `${name} is not in the crop stage`);
  // Held-out naming of the training folder itself: the crops the next step trains on, as it scores them before its update.
  const held = await run.cropStage!.accuracy(openProbeFolder(join(dir, 'synth')), 4);
  const next = await run.trainStep();
  assert.deepEqual(Object.keys(held), ['p3', 'p4']);
  assert.ok(Math.abs(held.p3! - next.losses.crop_accuracy_p3!) < 1e-9, `${held.p3} vs ${next.losses.crop_accuracy_p3}`);
  assert.ok(Math.abs(held.p4! - next.losses.crop_accuracy_p4!) < 1e-9, `${held.p4} vs ${next.losses.crop_accuracy_p4}`);
  run.dispose();
});

test('stem-crop stage then full-image steps: one step counter, resume inside the stage is exact, the stage length is kept', async () => {
  const dir = await makeSynthDir(4);
  const config = cropConfig(dir);
  const quiet = { progress: false, log: () => {} };
  const open = (log: (l: string) => void) => Pretrainer.create(config, log);
  const straight: StepReport[] = [];
  const a = await runTraining(config, { ...quiet, open, onStep: (r) => straight.push(r) });
  assert.equal(a.step, 5);
  assert.deepEqual(
    straight.map((r) => (r.losses.crop === undefined ? 'full' : 'crop')),
    ['crop', 'crop', 'crop', 'full', 'full'],
  );
  // The full-image steps take the schedule from their own start (constant 1e-3 here), the crop stage its lr.
  assert.deepEqual(
    straight.map((r) => r.lr),
    [1e-2, 1e-2, 1e-2, 1e-3, 1e-3],
  );
  a.dispose();
  const resumed: StepReport[] = [];
  const again = cropConfig(dir, { output: 'pre-crops-resume' });
  const openAgain = (log: (l: string) => void) => Pretrainer.create(again, log);
  (await runTraining(again, { ...quiet, open: openAgain, maxSteps: 2, onStep: (r) => resumed.push(r) })).dispose();
  const lines: string[] = [];
  const b = await runTraining(again, {
    ...quiet,
    open: openAgain,
    log: (l) => lines.push(l),
    onStep: (r) => resumed.push(r),
  });
  assert.match(lines.join('\n'), /resumed from step 2/);
  assert.deepEqual(
    resumed.map((r) => r.losses),
    straight.map((r) => r.losses),
  );
  b.dispose();
  await assert.rejects(
    Pretrainer.create(cropConfig(dir, { output: 'pre-crops-resume' }, { steps: 4 })),
    /started with 3 stem-crop steps \(pretrain.stemCrops.steps\); the config says 4/,
  );
});

test('stem-crop config: the settings are checked, and against the model', async () => {
  const base = {
    output: 'x',
    datasets: [{ name: 'a', type: 'detection', annotations: 'i.json' }],
  };
  const parse = (stemCrops: unknown, extra: Record<string, unknown> = {}) =>
    parsePretrainConfig({ ...base, ...extra, pretrain: { stemCrops } }, '/p.json');
  assert.equal(parsePretrainConfig(base, '/p.json').pretrain.stemCrops, null);
  assert.deepEqual(parse({ steps: 10 }).pretrain.stemCrops, {
    steps: 10,
    batchSize: 128,
    cropSize: 48,
    shift: 8,
    lr: null,
    warmupSteps: 20,
    levels: ['p3', 'p4'],
  });
  assert.throws(() => parse({ step: 10 }), /\/p.json: 'pretrain.stemCrops.step' is not a known setting/);
  assert.throws(() => parse({ batchSize: 0 }), /'pretrain.stemCrops.batchSize' must be a positive integer, got 0/);
  assert.throws(() => parse({ cropSize: 47.5 }), /'pretrain.stemCrops.cropSize' must be a positive integer, got 47.5/);
  assert.throws(() => parse({ lr: -1 }), /'pretrain.stemCrops.lr' must be positive or null, got -1/);
  assert.throws(() => parse({ warmupSteps: -1 }), /'pretrain.stemCrops.warmupSteps' must be a non-negative integer/);
  assert.throws(() => parse({ shift: 1.5 }), /'pretrain.stemCrops.shift' must be a non-negative integer, got 1.5/);
  assert.throws(
    () => parse({ cropSize: 32, shift: 16 }),
    /'pretrain.stemCrops.shift' must be less than half the crop size 32, got 16/,
  );
  assert.throws(() => parse({ levels: [] }), /'pretrain.stemCrops.levels' must list pyramid levels, got \[\]/);
  assert.throws(() => parse(5), /'pretrain.stemCrops' must be an object, got 5/);
  assert.throws(
    () => parse({}, { datasets: [{ name: 's', type: 'semantic', semanticIndex: 's.json' }] }),
    /'pretrain.stemCrops' needs a detection set in datasets/,
  );
  const dir = await makeSynthDir(2);
  await assert.rejects(
    Pretrainer.create(cropConfig(dir, { output: 'bad-size' }, { cropSize: 40 })),
    /cropSize must be a multiple of the stem's largest stride 16, got 40/,
  );
  await assert.rejects(
    Pretrainer.create(cropConfig(dir, { output: 'bad-level', pretrain: { stemCrops: { levels: ['p5'] } } })),
    /no stem stage feeds level 'p5' \(the stem feeds p3, p4\)/,
  );
  await assert.rejects(
    Pretrainer.create(
      cropConfig(dir, { output: 'no-stem', model: { preset: 'tiny', textVocabSize: 256, overrides: TINY_TEST_MODEL } }),
    ),
    /the model has no conv stem/,
  );
});

test('stem dropout: a full-image step drawn without the stem leaves the stem untrained and trains the ViT; the draws follow the seed', async () => {
  const dir = await makeSynthDir(4);
  const config = (output: string, stemDropout: number) =>
    cropConfig(dir, { output, pretrain: { levels: ['p3', 'p4'], stemDropout } });
  const moves = async (stemDropout: number) => {
    const run = await Pretrainer.create(config(`dropout-${stemDropout}`, stemDropout));
    const before = new Map([...run.network.namedParameters()].map(([k, v]) => [k, Array.from(v.dataSync())]));
    const report = await run.trainStep();
    const moved = (name: string) =>
      Array.from(run.network.namedParameters().get(name)!.dataSync()).some((v, i) => v !== before.get(name)![i]);
    const out = {
      stem: report.losses.stem,
      proj: moved('backbone.stem.proj_p3.weight'),
      vit: moved('backbone.net.blocks.0.attn.q_proj.weight'),
    };
    run.dispose();
    return out;
  };
  // The projections start at zero, so their own gradient (the stem stage's output times the loss's) is what moves them.
  assert.deepEqual(await moves(0), { stem: 1, proj: true, vit: true });
  assert.deepEqual(await moves(1), { stem: 0, proj: false, vit: true });

  const a = await Pretrainer.create(config('draws-a', 0.3));
  const draws = Array.from({ length: 400 }, (_, t) => a.dropsStem(t));
  a.dispose();
  const share = draws.filter(Boolean).length / draws.length;
  assert.ok(share > 0.24 && share < 0.36, `share ${share}`);
  const b = await Pretrainer.create(config('draws-b', 0.3));
  assert.deepEqual(
    Array.from({ length: 400 }, (_, t) => b.dropsStem(t)),
    draws,
  );
  b.dispose();

  const base = { output: 'x', datasets: [{ name: 'a', type: 'detection', annotations: 'i.json' }] };
  assert.equal(parsePretrainConfig(base, '/p.json').pretrain.stemDropout, 0);
  assert.throws(
    () => parsePretrainConfig({ ...base, pretrain: { stemDropout: 1.5 } }, '/p.json'),
    /'pretrain.stemDropout' must be a number from 0 to 1, got 1.5/,
  );
});
