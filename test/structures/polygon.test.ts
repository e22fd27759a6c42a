import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { rleFromBbox, rleFromPolygon, rleFromPolygonRing } from '../../src/structures/polygon.js';
import { compressRle } from '../../src/structures/rle-string.js';
import { decodeRle, rleArea, rleToBbox } from '../../src/structures/rle.js';
import { toRle, type Segmentation } from '../../src/structures/segmentation.js';

// Expected strings, areas and boxes come from pycocotools 2.0.11 (frPyObjects + merge, area, toBbox).
const root = fileURLToPath(new URL('../..', import.meta.url));
const fixture = join(root, '../shared/fixtures/coco-eval');

const cases: {
  name: string;
  polygons: number[][];
  h: number;
  w: number;
  counts: string;
  area: number;
  bbox: number[];
}[] = [
  {
    name: 'triangle',
    polygons: [[2, 1, 8, 3, 3, 9]],
    h: 10,
    w: 10,
    counts: 'e0463NN1O1O2Nb0',
    area: 24,
    bbox: [2, 1, 6, 7],
  },
  {
    name: 'half-pixel square',
    polygons: [[1.5, 1.5, 6.5, 1.5, 6.5, 4.5, 1.5, 4.5]],
    h: 8,
    w: 9,
    counts: 'b0350000000>',
    area: 15,
    bbox: [2, 2, 5, 3],
  },
  {
    name: 'partly outside the image',
    polygons: [[-3, -2, 12.3, 4.7, 5.2, 14.9]],
    h: 10,
    w: 11,
    counts: '0552N2O0O01O001O000O2MN',
    area: 78,
    bbox: [0, 0, 11, 10],
  },
  {
    name: 'two rings',
    polygons: [
      [0, 0, 3, 0, 3, 3, 0, 3],
      [5, 5, 9, 5, 9, 8],
    ],
    h: 10,
    w: 10,
    counts: '037000S1NoN1O14',
    area: 15,
    bbox: [0, 0, 9, 8],
  },
];

for (const c of cases) {
  test(`polygon rasterisation matches pycocotools: ${c.name}`, () => {
    const rle = rleFromPolygon(c.polygons, c.h, c.w);
    assert.equal(compressRle(rle).counts, c.counts);
    assert.equal(rleArea(rle), c.area);
    assert.deepEqual(rleToBbox(rle), c.bbox);
  });
}

test('a half-pixel square covers exactly the pixels whose centres it contains', () => {
  const mask = decodeRle(rleFromPolygonRing([1.5, 1.5, 6.5, 1.5, 6.5, 4.5, 1.5, 4.5], 8, 9));
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 9; x++)
      assert.equal(mask[y * 9 + x], x >= 2 && x <= 6 && y >= 2 && y <= 4 ? 1 : 0, `pixel ${x},${y}`);
  }
});

test('rleFromBbox rasterises the box outline like maskApi rleFrBbox', () => {
  const rle = rleFromBbox([2.3, 1.7, 4.4, 3.2], 9, 10);
  assert.equal(compressRle(rle).counts, 'd0360000000i0');
  assert.equal(rleArea(rle), 15);
});

test('degenerate polygons give empty masks; absurd coordinates are rejected', () => {
  assert.deepEqual(rleFromPolygon([], 4, 5), { size: [4, 5], counts: [20] });
  assert.deepEqual(rleFromPolygonRing([1, 1], 4, 5), { size: [4, 5], counts: [20] });
  assert.equal(rleArea(rleFromPolygonRing([1, 1, 1, 1, 1, 1], 4, 5)), 0);
  assert.throws(() => rleFromPolygonRing([0, 0, 5e7, 0, 0, 5e7], 10, 10), /fine-grid steps/);
  assert.throws(() => rleFromPolygonRing([0, 0, NaN, 0, 0, 5], 10, 10), /finite/);
});

test('every fixture annotation rasterises to the pycocotools areas and boxes', () => {
  const gt = JSON.parse(readFileSync(join(fixture, 'instances_val2014_100.json'), 'utf8'));
  const images = new Map<number, { height: number; width: number }>(
    gt.images.map((im: { id: number; height: number; width: number }) => [im.id, im]),
  );
  let areaSum = 0;
  let boxSum = 0;
  for (const ann of gt.annotations as { image_id: number; segmentation: Segmentation }[]) {
    const image = images.get(ann.image_id)!;
    const rle = toRle(ann.segmentation, image.height, image.width);
    areaSum += rleArea(rle);
    boxSum += rleToBbox(rle).reduce((a, b) => a + b, 0);
  }
  assert.equal(areaSum, 9144836);
  assert.equal(boxSum, 532102);
  const first = gt.annotations[0];
  const image = images.get(first.image_id)!;
  assert.equal(
    compressRle(toRle(first.segmentation, image.height, image.width)).counts,
    'ZTj01X=3M2N2N2N3N1O1O0000000O1000000O1O100O1O100M3K4L5N2N2N2O1N2N2N2O1O1O001O100O1O1O001O1O01O001O00' +
      '0100O1O2O0O100O2N10O0100O2O001N2O1O0O2O1O0O2O1O1O1N2O1O1N101O1N2O1O1O1O1O10O0000000000000001OO1O1O1O' +
      '2N10000O10000O1DVEXNj:h1YEWNe:i1]EoMi:P29000000O2O000O1000000000000000000000000001O0000001O0000001O0' +
      '00O101O00001O000000001O0O100000000000001O00000O10000000001N10000O10000O10001O0O10000O1000001N1000000' +
      '0001N100000000O101O2N1O1O1N2O1O1O1O1O001N101O00001O00000000000O101O0001O0000001O001O1O1N2N2N2M3N1O2N' +
      '3J5K5K5N2O1O1O2M3N2N2M3N2O1N2N2O1N2N2O1N4M0O1O2O0O1O101N1O100O2N1O100O1O100O1O100O1000000O1O100O1O1O' +
      '1O001O1O1O101Nind3',
  );
});
