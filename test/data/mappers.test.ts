import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { swapLeftRight, hasOrdinalWord } from '../../src/data/mappers/sentence-words.js';
import { augmentSample, flipSample, cropSample, dropSmall } from '../../src/data/mappers/augment.js';
import { selectGroundingPhrases } from '../../src/data/mappers/grounding-sample.js';
import { federatedPromptWeights } from '../../src/data/mappers/federated.js';
import { loadSample, DEFAULT_LOAD_OPTIONS } from '../../src/data/mappers/load-sample.js';
import { resizeImageBilinear } from '../../src/io/image-ops.js';
import { TrainingDataset } from '../../src/data/dataset.js';
import { parseCocoInstances } from '../../src/data/readers/coco.js';
import { readSemanticFolders } from '../../src/data/readers/semantic.js';
import { collateBatch } from '../../src/data/batch.js';
import { defaultLossSwitches } from '../../src/data/sampler/loss-switches.js';
import type { Sample } from '../../src/data/sample.js';
import type { AnnotationRecord } from '../../src/data/types.js';
import { writeImage } from '../../src/io/image-node.js';
import { encodeRle } from '../../src/structures/rle.js';
import { Rng } from '../../src/util/random.js';

test('left/right swap keeps case and whole words; ordinal words are recognised', () => {
  assert.equal(
    swapLeftRight('Left dog, right of the leftmost car; bright light'),
    'Right dog, left of the rightmost car; bright light',
  );
  assert.equal(swapLeftRight('RIGHT'), 'LEFT');
  assert.ok(hasOrdinalWord('the second man from left'));
  assert.ok(hasOrdinalWord('3rd bottle'));
  assert.ok(hasOrdinalWord('the leftmost zebra'));
  assert.ok(!hasOrdinalWord('a man on the left'));
  assert.ok(!hasOrdinalWord('firstly red')); // whole words only
});

function sample(
  width: number,
  height: number,
  kind: 'vocabulary' | 'sentence' = 'vocabulary',
  prompts = ['a'],
): Sample {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data[i * 3] = i % 256;
  const mask = new Uint8Array(width * height);
  for (let y = 1; y < 3; y++) for (let x = 0; x < 2; x++) mask[y * width + x] = 1; // [0,1,2,3]
  return {
    image: { width, height, data },
    instances: [{ box: [0, 1, 2, 3], mask, label: 0 }],
    prompts,
    promptKind: kind,
    hasMasks: true,
    source: 't',
    imageId: 1,
  };
}

test('flip mirrors pixels, boxes and masks and swaps sentence words', () => {
  const s = flipSample(sample(6, 4, 'sentence', ['dog on the left']));
  assert.deepEqual(s.instances[0]!.box, [4, 1, 6, 3]);
  assert.equal(s.instances[0]!.mask![1 * 6 + 5], 1);
  assert.equal(s.instances[0]!.mask![1 * 6 + 0], 0);
  assert.equal(s.image.data[0], 5); // pixel 5 of row 0 is now first
  assert.deepEqual(s.prompts, ['dog on the right']);
});

test('crop clips boxes and recomputes mask boxes; drops emptied objects and their phrases', () => {
  const s = sample(6, 4, 'sentence', ['p0', 'p1']);
  s.instances.push({ box: [4, 0, 6, 1], label: 1 });
  const c = dropSmall(cropSample(s, 1, 0, 3, 4), 1);
  // The second object ([4,0,6,1]) is cut to zero width and dropped with its phrase.
  assert.deepEqual(
    c.instances.map((i) => i.box),
    [[0, 1, 1, 3]],
  );
  assert.deepEqual(c.prompts, ['p0']);
  assert.equal(c.image.width, 3);
});

test('augment: output fits the canvas; ordinal sentences are scaled to fit instead of cropped', () => {
  const rng = new Rng(3);
  for (let i = 0; i < 20; i++) {
    const out = augmentSample(sample(40, 30), rng, {
      size: 16,
      flipProbability: 0.5,
      scaleRange: [0.5, 2],
      crop: true,
      minSize: 0,
    });
    assert.ok(out.image.width <= 16 && out.image.height <= 16);
    const ord = augmentSample(sample(40, 30, 'sentence', ['the second cup']), rng, {
      size: 16,
      flipProbability: 0,
      scaleRange: [2, 2],
      crop: true,
      minSize: 0,
    });
    assert.deepEqual([ord.image.width, ord.image.height], [16, 12]); // whole image, scaled down
  }
});

test('bilinear resize of a constant image stays constant; halving averages', () => {
  const img = { width: 8, height: 8, data: new Uint8Array(192).fill(77) };
  assert.ok(resizeImageBilinear(img, 3, 5).data.every((v) => v === 77));
});

const ann = (id: number, box: [number, number, number, number], sentences: string[]): AnnotationRecord => ({
  id,
  box,
  categoryId: -1,
  isCrowd: false,
  sentences,
});

test('image-centric grounding: random-score NMS at 0.6 keeps one of two overlapping objects, merges equal phrases, caps phrases', () => {
  const anns = [
    ann(1, [0, 0, 10, 10], ['left cat', 'cat']),
    ann(2, [1, 0, 11, 10], ['right cat']),
    ann(3, [50, 50, 60, 60], ['cat', 'a dog']),
  ];
  const seen = new Set<string>();
  for (let seed = 0; seed < 30; seed++) {
    const sel = selectGroundingPhrases(anns, new Rng(seed), { nmsIou: 0.6, maxPrompts: 128 });
    const kept = new Set(sel.pairs.map((p) => p.annotation));
    assert.ok(kept.has(2) && !(kept.has(0) && kept.has(1)), `seed ${seed}`);
    assert.equal(kept.size, 2);
    seen.add(kept.has(0) ? 'first' : 'second');
    // 'cat' names annotation 0 and 2 when both are kept: one prompt, two objects.
    if (kept.has(0)) {
      const cat = sel.prompts.indexOf('cat');
      assert.deepEqual(
        sel.pairs
          .filter((p) => p.prompt === cat)
          .map((p) => p.annotation)
          .sort(),
        [0, 2],
      );
    }
  }
  assert.deepEqual([...seen].sort(), ['first', 'second']);
  const many = Array.from({ length: 200 }, (_, i) => ann(i, [i * 20, 0, i * 20 + 10, 10], [`thing ${i}`]));
  const capped = selectGroundingPhrases(many, new Rng(1), { nmsIou: 0.6, maxPrompts: 128 });
  assert.equal(capped.prompts.length, 128);
  assert.equal(capped.pairs.length, 128);
});

test('federated prompt subset: positives and verified negatives always, the rest by weight', () => {
  const w = new Float32Array([1, 1, 0, 4, 1, 1]);
  const rng = new Rng(5);
  const counts = new Array(6).fill(0);
  for (let i = 0; i < 400; i++) {
    const chosen = federatedPromptWeights([0], [1], w, { numSampleCats: 3 }, rng);
    assert.equal(
      chosen.reduce((a, b) => a + b, 0),
      3,
    );
    assert.equal(chosen[0], 1);
    assert.equal(chosen[1], 1);
    assert.equal(chosen[2], 0); // weight 0 never drawn
    chosen.forEach((v, c) => (counts[c] += v));
  }
  // One draw among categories 3, 4, 5 (weights 4, 1, 1): category 3 about 2/3 of the time (267 +- 9.4).
  assert.ok(counts[3] > 235 && counts[3] < 298, String(counts));
  assert.equal(counts[3] + counts[4] + counts[5], 400);
});

test('loadSample splits stuff masks into components (tiny ones dropped) and collate normalises', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ape-load-'));
  const w = 20;
  const h = 10;
  await writeImage(join(dir, 'a.png'), { width: w, height: h, data: new Uint8Array(w * h * 3).fill(100) });
  const stuff = new Uint8Array(w * h);
  for (let y = 0; y < 4; y++) for (let x = 0; x < 5; x++) stuff[y * w + x] = 1; // 20 px
  for (let y = 6; y < 10; y++) for (let x = 12; x < 20; x++) stuff[y * w + x] = 1; // 32 px
  stuff[0 * w + 10] = 1; // a 1-pixel speck
  const json = {
    images: [{ id: 1, file_name: 'a.png', width: w, height: h }],
    categories: [
      { id: 1, name: 'car' },
      { id: 2, name: 'grass', isthing: 0 },
    ],
    annotations: [
      { id: 1, image_id: 1, category_id: 2, bbox: [0, 0, 20, 10], segmentation: encodeRle(stuff, h, w) },
      { id: 2, image_id: 1, category_id: 1, bbox: [8, 2, 4, 3], segmentation: [[8, 2, 12, 2, 12, 5, 8, 5]] },
    ],
  };
  const ds = new TrainingDataset('t', parseCocoInstances(json, join(dir, 'i.json')));
  const s = await loadSample(ds, 0, new Rng(1), { ...DEFAULT_LOAD_OPTIONS, minComponentFraction: 0.01 });
  assert.deepEqual(s.prompts, ['car', 'grass']);
  assert.deepEqual(
    s.instances.map((i) => [i.label, ...i.box]),
    [
      [1, 0, 0, 5, 4],
      [1, 12, 6, 20, 10],
      [0, 8, 2, 12, 5],
    ],
  );
  assert.equal(s.hasMasks, true);
  const batch = collateBatch([s], 32, defaultLossSwitches('detection', true), 't');
  assert.equal(batch.images.length, 32 * 32 * 3);
  assert.equal(batch.images[0], 100);
  assert.deepEqual(batch.sizes, [[10, 20]]);
  assert.equal(batch.images[(0 * 32 + 25) * 3], 0); // padding
  const t = batch.targets[0]!;
  assert.deepEqual(Array.from(t.labels), [1, 1, 0]);
  // Boxes normalised by the image's own size: [0,0,5,4] -> cx 2.5/20, cy 2/10, w 5/20, h 4/10.
  assert.deepEqual(
    Array.from(t.boxes.subarray(0, 4)).map((v) => Math.round(v * 1e4) / 1e4),
    [0.125, 0.2, 0.25, 0.4],
  );
  assert.equal(t.masks![0]!.length, 32 * 32);
  assert.equal(t.masks![0]![3 * 32 + 4], 1);
});

test('loadSample on semantic labels: one instance per connected region, unknown labels refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ape-sem-'));
  mkdirSync(join(dir, 'images'));
  mkdirSync(join(dir, 'labels'));
  const w = 8;
  const h = 4;
  await writeImage(join(dir, 'images', 'x.png'), { width: w, height: h, data: new Uint8Array(w * h * 3) });
  const labels = new Uint8Array(w * h).fill(255);
  for (let y = 0; y < h; y++) {
    labels[y * w + 0] = 3;
    labels[y * w + 7] = 3;
    labels[y * w + 4] = 5;
  }
  await writeImage(join(dir, 'labels', 'x.png'), { width: w, height: h, data: labels });
  const records = readSemanticFolders({
    imageDir: join(dir, 'images'),
    labelDir: join(dir, 'labels'),
    categories: [
      { id: 3, name: 'wall', isThing: false },
      { id: 5, name: 'pole', isThing: true },
    ],
  });
  const s = await loadSample(new TrainingDataset('sem', records), 0, new Rng(1));
  assert.deepEqual(
    s.instances.map((i) => [i.label, ...i.box]),
    [
      [0, 0, 0, 1, 4],
      [0, 7, 0, 8, 4],
      [1, 4, 0, 5, 4],
    ],
  );
  const bad = readSemanticFolders({
    imageDir: join(dir, 'images'),
    labelDir: join(dir, 'labels'),
    categories: [{ id: 3, name: 'wall', isThing: false }],
  });
  await assert.rejects(
    loadSample(new TrainingDataset('sem', bad), 0, new Rng(1)),
    /x\.png: pixel 4,0 has label 5, which is no category id/,
  );
});
