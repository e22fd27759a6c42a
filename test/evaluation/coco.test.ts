import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { evaluateCoco } from '../../src/evaluation/coco/evaluate.js';
import { CocoFormatError, parseCocoGroundTruth, parseCocoResults } from '../../src/evaluation/coco/parse.js';
import { formatFixed3, pairwiseSum } from '../../src/evaluation/coco/summarize.js';
import { linspace } from '../../src/evaluation/coco/params.js';
import type { CocoAnnotation, CocoDataset, CocoResult } from '../../src/evaluation/coco/types.js';
import { compressRle } from '../../src/structures/rle-string.js';
import { rleFromPolygon } from '../../src/structures/polygon.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fixture = join(root, '../shared/fixtures/coco-eval');
const read = (name: string) => readFileSync(join(fixture, name), 'utf8');

test('reproduces the reference evaluator on the COCO val2014 fixture (24 numbers, 1e-9)', () => {
  const expected = JSON.parse(read('expected.json'));
  const gt = parseCocoGroundTruth(read('instances_val2014_100.json'), 'instances_val2014_100.json');
  for (const type of ['bbox', 'segm'] as const) {
    const file = `instances_val2014_fake${type}100_results.json`;
    const evaluation = evaluateCoco(gt, parseCocoResults(read(file), gt, file), type);
    assert.equal(evaluation.stats.length, 12);
    evaluation.stats.forEach((v, i) => {
      assert.ok(Math.abs(v - expected[type][i]) <= 1e-9, `${type} ${expected.keys[i]}: ${v} vs ${expected[type][i]}`);
    });
    if (type === 'bbox') {
      // The reference's printed summary, line for line.
      assert.equal(
        evaluation.summary,
        [
          ' Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.505',
          ' Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.697',
          ' Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.573',
          ' Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.586',
          ' Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.519',
          ' Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.501',
          ' Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.387',
          ' Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.594',
          ' Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.595',
          ' Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.640',
          ' Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.566',
          ' Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.564',
        ].join('\n'),
      );
      assert.equal(evaluation.perCategory.length, 80);
      const { T, R } = { T: 10, R: 101 };
      assert.equal(evaluation.precision.length, T * R * 80 * 4 * 3);
    }
  }
});

// ---- Small hand-made cases (one 200x200 image, categories 1 and 2; category 2 never has ground truth) ----
// Each expected row was worked out by hand and confirmed with pycocotools 2.0.11 on the same data.

type Ann = Partial<CocoAnnotation> & { bbox: [number, number, number, number] };

function groundTruth(anns: Ann[]): CocoDataset {
  return {
    images: [{ id: 1, width: 200, height: 200 }],
    categories: [
      { id: 1, name: 'thing' },
      { id: 2, name: 'other' },
    ],
    annotations: anns.map((a, i) => ({
      id: i + 1,
      image_id: 1,
      category_id: 1,
      iscrowd: 0,
      area: a.bbox[2] * a.bbox[3],
      ...a,
    })),
  };
}

const det = (bbox: [number, number, number, number], score: number, category_id = 1): CocoResult => ({
  image_id: 1,
  category_id,
  score,
  bbox,
});
const stats = (gt: CocoDataset, res: CocoResult[], type: 'bbox' | 'segm' = 'bbox') => evaluateCoco(gt, res, type).stats;
const assertStats = (actual: number[], expected: number[]) =>
  actual.forEach((v, i) =>
    assert.ok(Math.abs(v - expected[i]!) < 1e-12, `stat ${i}: ${v} vs ${expected[i]} (all: ${actual})`),
  );

test('a perfect detection scores 1; area ranges without objects are -1', () => {
  // area 400: a small object
  assertStats(
    stats(groundTruth([{ bbox: [10, 10, 20, 20] }]), [det([10, 10, 20, 20], 0.9)]),
    [1, 1, 1, 1, -1, -1, 1, 1, 1, 1, -1, -1],
  );
});

test('a false positive ranked above the true positive halves precision at every recall', () => {
  const gt = groundTruth([{ bbox: [10, 10, 20, 20] }]);
  assertStats(
    stats(gt, [det([150, 150, 20, 20], 0.9), det([10, 10, 20, 20], 0.8)]),
    [0.5, 0.5, 0.5, 0.5, -1, -1, 0, 1, 1, 1, -1, -1],
  );
  // ranked below, it costs nothing; of another category with no ground truth, it is not scored at all
  assertStats(
    stats(gt, [det([150, 150, 20, 20], 0.7), det([10, 10, 20, 20], 0.8)]),
    [1, 1, 1, 1, -1, -1, 1, 1, 1, 1, -1, -1],
  );
  assertStats(
    stats(gt, [det([150, 150, 20, 20], 0.9, 2), det([10, 10, 20, 20], 0.8)]),
    [1, 1, 1, 1, -1, -1, 1, 1, 1, 1, -1, -1],
  );
});

test('IoU 0.72 matches at thresholds 0.50 to 0.70 only', () => {
  // large object (area 10000); half of the ten thresholds match
  const gt = groundTruth([{ bbox: [0, 0, 100, 100] }]);
  assertStats(stats(gt, [det([0, 0, 100, 72], 0.9)]), [0.5, 1, 0, -1, -1, 0.5, 0.5, 0.5, 0.5, -1, -1, 0.5]);
});

test('a detection inside a crowd region is ignored, not a false positive', () => {
  const objects: Ann[] = [{ bbox: [10, 10, 20, 20] }, { bbox: [100, 100, 80, 80], iscrowd: 1 }];
  const results = [det([110, 110, 10, 10], 0.95), det([10, 10, 20, 20], 0.9)];
  // (AR@1 is 0: the one detection kept per image is the ignored one.)
  assertStats(stats(groundTruth(objects), results), [1, 1, 1, 1, -1, -1, 0, 1, 1, 1, -1, -1]);
  // The same region as an ordinary object: the first-ranked detection is a false positive and the
  // region is missed, so precision is 0.5 up to recall 0.5 and 0 beyond: AP = 51 * 0.5 / 101.
  // Among small objects the (medium) region is ignored but the small unmatched detection still counts.
  objects[1]!.iscrowd = 0;
  const ap = (51 * 0.5) / 101;
  assertStats(stats(groundTruth(objects), results), [ap, ap, ap, 0.5, 0, -1, 0, 0.5, 0.5, 1, 0, -1]);
});

test('maxDets limits detections per image (AR@1 vs AR@10)', () => {
  const gt = groundTruth([{ bbox: [10, 10, 20, 20] }, { bbox: [100, 100, 20, 20] }]);
  assertStats(
    stats(gt, [det([10, 10, 20, 20], 0.9), det([100, 100, 20, 20], 0.8)]),
    [1, 1, 1, 1, -1, -1, 0.5, 1, 1, 1, -1, -1],
  );
});

test('no detections: 0 where objects exist', () => {
  assertStats(stats(groundTruth([{ bbox: [10, 10, 20, 20] }]), []), [0, 0, 0, 0, -1, -1, 0, 0, 0, 0, -1, -1]);
});

test('the area range uses the annotation area field, not the box', () => {
  // A 20x20 box annotated with area 5000 is a medium object.
  assertStats(
    stats(groundTruth([{ bbox: [10, 10, 20, 20], area: 5000 }]), [det([10, 10, 20, 20], 0.9)]),
    [1, 1, 1, -1, 1, -1, 1, 1, 1, -1, 1, -1],
  );
});

test('segm: masks from polygons and compressed RLE; results are read like the first one (loadRes)', () => {
  const square = [10, 10, 30, 10, 30, 30, 10, 30];
  const gt = groundTruth([{ bbox: [10, 10, 20, 20], segmentation: [square] }]);
  const mask = compressRle(rleFromPolygon([square], 200, 200));
  const farMask = compressRle(rleFromPolygon([[150, 150, 160, 150, 160, 160, 150, 160]], 200, 200));
  const tp: CocoResult = { image_id: 1, category_id: 1, score: 0.8, segmentation: mask };
  assertStats(stats(gt, [tp], 'segm'), [1, 1, 1, 1, -1, -1, 1, 1, 1, 1, -1, -1]);
  // A box-only result evaluated as a mask is the rasterised box.
  assertStats(stats(gt, [det([10, 10, 20, 20], 0.8)], 'segm'), [1, 1, 1, 1, -1, -1, 1, 1, 1, 1, -1, -1]);
  // A higher-scored false positive with a small mask (area 100): counted among small objects...
  const fp: CocoResult = { image_id: 1, category_id: 1, score: 0.9, segmentation: farMask };
  assertStats(stats(gt, [fp, tp], 'segm'), [0.5, 0.5, 0.5, 0.5, -1, -1, 0, 1, 1, 1, -1, -1]);
  // ...but when the first result carries a box, every result's area is its box's w*h (pycocotools
  // loadRes), and a 50x50 box puts the unmatched false positive outside the small range.
  const fpWithBox: CocoResult = { ...fp, bbox: [150, 150, 50, 50] };
  assertStats(
    stats(gt, [fpWithBox, { ...tp, bbox: [10, 10, 20, 20] }], 'segm'),
    [0.5, 0.5, 0.5, 1, -1, -1, 0, 1, 1, 1, -1, -1],
  );
  assert.throws(() => stats(gt, [fpWithBox, tp], 'segm'), /results\[1\]: has no bbox, but the first result has one/);
});

test('per-category AP and options restricting images and categories', () => {
  const gt = groundTruth([{ bbox: [10, 10, 20, 20] }, { bbox: [100, 100, 20, 20], category_id: 2 }]);
  const evaluation = evaluateCoco(gt, [det([10, 10, 20, 20], 0.9), det([0, 150, 20, 20], 0.8, 2)], 'bbox');
  // (A perfect AP is 1 - 2e-16: the reference divides by tp + fp + eps.)
  assert.deepEqual(
    evaluation.perCategory.map((c) => [c.categoryId, c.name, Math.round(c.ap * 1e12) / 1e12]),
    [
      [1, 'thing', 1],
      [2, 'other', 0],
    ],
  );
  assertStats(evaluation.stats.slice(0, 1), [0.5]);
  assertStats(evaluateCoco(gt, [det([10, 10, 20, 20], 0.9)], 'bbox', { categoryIds: [1] }).stats.slice(0, 1), [1]);
  assertStats(evaluateCoco(gt, [det([10, 10, 20, 20], 0.9)], 'bbox', { imageIds: [1] }).stats.slice(0, 1), [0.5]);
});

test('numeric details match numpy and Python formatting', () => {
  // numpy.linspace(.5, .95, 10) and (0, 1, 101) values, bit for bit
  const iou = linspace(0.5, 0.95, 10);
  assert.equal(iou[5], 0.75);
  assert.equal(iou[8], 0.8999999999999999);
  assert.equal(iou[9], 0.95);
  const rec = linspace(0, 1, 101);
  assert.equal(rec[3], 0.03);
  assert.equal(rec[35], 0.35000000000000003);
  assert.equal(rec[70], 0.7000000000000001);
  assert.equal(rec[100], 1);
  // '{:0.3f}' rounds exact ties to even; toFixed would round them up
  assert.equal(formatFixed3(0.0625), '0.062');
  assert.equal(formatFixed3(0.0635), '0.064'); // 0.0635 is slightly above the tie in binary
  assert.equal(formatFixed3(-1), '-1.000');
  assert.equal(formatFixed3(0.5045806987249628), '0.505');
  assert.equal(pairwiseSum(Array.from({ length: 1000 }, (_, i) => i)), 499500);
});

// ---- Validation ----

test('ground-truth problems name the file, record, field and value', () => {
  const good = {
    images: [{ id: 1, width: 10, height: 10 }],
    categories: [{ id: 1, name: 'a' }],
    annotations: [] as unknown[],
  };
  const bad = (patch: object) => JSON.stringify({ ...good, ...patch });
  assert.throws(() => parseCocoGroundTruth('{"images": [', 'gt.json'), /^CocoFormatError: gt.json: not valid JSON/);
  assert.throws(() => parseCocoGroundTruth('[]', 'gt.json'), /gt.json: top level: expected an object/);
  assert.throws(
    () => parseCocoGroundTruth(JSON.stringify({ images: [] }), 'gt.json'),
    /gt.json: categories: expected an array, got nothing/,
  );
  assert.throws(
    () => parseCocoGroundTruth(bad({ images: [{ id: 1, width: 0, height: 10 }] }), 'gt.json'),
    /images\[0\]\.width: expected an integer in \[1, 100000\], got 0/,
  );
  assert.throws(
    () => parseCocoGroundTruth(bad({ images: [{ id: 1, width: 1e9, height: 10 }] }), 'gt.json'),
    /images\[0\]\.width/,
  );
  const ann = { id: 7, image_id: 1, category_id: 1, bbox: [0, 0, 2, 2], area: 4, iscrowd: 0 };
  assert.throws(
    () => parseCocoGroundTruth(bad({ annotations: [{ ...ann, image_id: 2 }] }), 'gt.json'),
    /annotations\[0\]\.image_id: no image with this id in "images", got 2/,
  );
  assert.throws(
    () => parseCocoGroundTruth(bad({ annotations: [{ ...ann, category_id: 9 }] }), 'gt.json'),
    /annotations\[0\]\.category_id: .*got 9/,
  );
  assert.throws(
    () => parseCocoGroundTruth(bad({ annotations: [ann, ann] }), 'gt.json'),
    /annotations\[1\]\.id: duplicate annotation id, got 7/,
  );
  assert.throws(
    () => parseCocoGroundTruth(bad({ annotations: [{ ...ann, bbox: [0, 0, '2', 2] }] }), 'gt.json'),
    /annotations\[0\]\.bbox: expected \[x, y, width, height\]/,
  );
  assert.throws(
    () => parseCocoGroundTruth(bad({ annotations: [{ ...ann, iscrowd: 2 }] }), 'gt.json'),
    /iscrowd: expected 0 or 1, got 2/,
  );
  assert.throws(
    () =>
      parseCocoGroundTruth(
        bad({ annotations: [{ ...ann, segmentation: { size: [10, 11], counts: [110] } }] }),
        'gt.json',
      ),
    /segmentation\.size: expected \[height, width\] = \[10, 10\] of image 1, got \[10,11\]/,
  );
  assert.throws(
    () =>
      parseCocoGroundTruth(
        bad({ annotations: [{ ...ann, segmentation: { size: [10, 10], counts: [50, 40] } }] }),
        'gt.json',
      ),
    /segmentation\.counts: runs cover 90 pixels, the 10x10 image has 100/,
  );
  assert.throws(
    () => parseCocoGroundTruth(bad({ annotations: [{ ...ann, segmentation: [[0, 0, 'x']] }] }), 'gt.json'),
    /segmentation\[0\]\[2\]/,
  );
  const parsed = parseCocoGroundTruth(bad({ annotations: [ann] }), 'gt.json');
  assert.deepEqual(parsed.annotations, [ann]);
});

test('results problems name the file, record, field and value', () => {
  const gt = groundTruth([{ bbox: [10, 10, 20, 20] }]);
  const ok = { image_id: 1, category_id: 1, score: 0.5, bbox: [1, 2, 3, 4] };
  assert.throws(() => parseCocoResults('{}', gt, 'res.json'), /res.json: top level: expected an array of detections/);
  assert.throws(() => parseCocoResults('nope', gt, 'res.json'), /res.json: not valid JSON/);
  assert.throws(
    () => parseCocoResults(JSON.stringify([ok, { ...ok, image_id: 42 }]), gt, 'res.json'),
    /res.json: \[1\]\.image_id: not an image of the ground truth, got 42/,
  );
  assert.throws(
    () => parseCocoResults(JSON.stringify([{ ...ok, category_id: 3 }]), gt, 'res.json'),
    /\[0\]\.category_id: not a category of the ground truth, got 3/,
  );
  assert.throws(
    () => parseCocoResults(JSON.stringify([{ ...ok, score: 'high' }]), gt, 'res.json'),
    /\[0\]\.score: expected a finite number, got "high"/,
  );
  assert.throws(
    () => parseCocoResults(JSON.stringify([{ image_id: 1, category_id: 1, score: 1 }]), gt, 'res.json'),
    /\[0\]: a detection needs "bbox" or "segmentation"/,
  );
  assert.throws(
    () =>
      parseCocoResults(JSON.stringify([{ ...ok, segmentation: { size: [200, 200], counts: 'a b' } }]), gt, 'res.json'),
    /\[0\]\.segmentation\.counts: compressed RLE: invalid character/,
  );
  assert.deepEqual(parseCocoResults(JSON.stringify([ok]), gt, 'res.json'), [ok]);
});

// Before: the message for a value nested a million levels deep was built by JSON.stringify, then
// String(), both recursive: "Maximum call stack size exceeded", with no file named.
test('a deeply nested value gets a message naming the file and the record, not a stack overflow', () => {
  const deep = '['.repeat(1_000_000) + ']'.repeat(1_000_000);
  assert.throws(
    () => parseCocoGroundTruth(`{"images": [${deep}], "annotations": [], "categories": []}`, 'gt.json'),
    (error: unknown) =>
      error instanceof CocoFormatError &&
      /^gt\.json: images\[0\]: expected an object, got \[\[\[\.\.\.\]\]\]$/.test(error.message),
  );
  assert.throws(
    () => parseCocoResults(deep, { images: [], annotations: [], categories: [] } as unknown as CocoDataset, 'res.json'),
    /^CocoFormatError: res\.json: \[0\]: expected an object, got \[\[\[\.\.\.\]\]\]$/,
  );
});
