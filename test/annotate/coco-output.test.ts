import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildCocoDataset, writeCocoDataset } from '../../src/annotate/coco-output.js';
import type { ImageOutcome } from '../../src/annotate/types.js';

const settings = { vocabulary: ['cat', 'dog'], sentences: ['the red ball'], threshold: 0.25 };
const rle = { size: [2, 4] as [number, number], counts: '02N0' };

describe('buildCocoDataset', () => {
  it('numbers images by position and annotations in image order, whatever order outcomes came in', () => {
    const outcomes = new Map<number, ImageOutcome>([
      [
        2,
        {
          ok: true,
          result: {
            width: 4,
            height: 2,
            objects: [{ prompt: 2, bbox: [1, 0, 2, 2], area: 3, score: 0.9, segmentation: rle }],
          },
        },
      ],
      [1, { ok: false, reason: 'cannot read /data/b.png: ENOENT' }],
      [
        0,
        {
          ok: true,
          result: {
            width: 8,
            height: 6,
            objects: [
              { prompt: 1, bbox: [0, 0, 1, 1], area: 1, score: 0.4, segmentation: null },
              { prompt: 0, bbox: [2, 2, 3, 3], area: 9, score: 0.3, segmentation: null },
            ],
          },
        },
      ],
    ]);
    const { dataset, errors } = buildCocoDataset(
      ['/data/a.png', '/data/b.png', '/data/sub/c.png'],
      '/data/out',
      settings,
      'm1',
      outcomes,
    );
    assert.deepEqual(dataset.categories, [
      { id: 1, name: 'cat', supercategory: 'vocabulary' },
      { id: 2, name: 'dog', supercategory: 'vocabulary' },
      { id: 3, name: 'the red ball', supercategory: 'sentence' },
    ]);
    assert.deepEqual(dataset.images, [
      { id: 1, file_name: '../a.png', width: 8, height: 6 },
      { id: 3, file_name: '../sub/c.png', width: 4, height: 2 },
    ]);
    assert.deepEqual(
      dataset.annotations.map((a) => [a.id, a.image_id, a.category_id, a.area, a.score, a.segmentation === undefined]),
      [
        [1, 1, 2, 1, 0.4, true],
        [2, 1, 1, 9, 0.3, true],
        [3, 3, 3, 3, 0.9, false],
      ],
    );
    assert.deepEqual(errors, [{ file: '/data/b.png', reason: 'cannot read /data/b.png: ENOENT' }]);
    assert.deepEqual(dataset.info, { description: 'ape annotate', model: 'm1', threshold: 0.25 });
  });

  it('refuses to build while an image has no outcome', () => {
    assert.throws(
      () => buildCocoDataset(['/a.png'], '/out', settings, 'm', new Map()),
      /image 0 \(\/a\.png\) has no outcome yet/,
    );
  });

  it('writes one record per line, and the file parses back to the dataset', async () => {
    const outcomes = new Map<number, ImageOutcome>([
      [
        0,
        {
          ok: true,
          result: {
            width: 4,
            height: 2,
            objects: [{ prompt: 0, bbox: [1, 0, 2, 2], area: 3, score: 0.9, segmentation: rle }],
          },
        },
      ],
    ]);
    const { dataset } = buildCocoDataset(['/x/a.png'], '/x/out', settings, 'm', outcomes);
    const path = join(mkdtempSync(join(tmpdir(), 'ape-coco-')), 'annotations.json');
    await writeCocoDataset(path, dataset);
    const text = readFileSync(path, 'utf8');
    assert.deepEqual(JSON.parse(text), dataset);
    assert.equal(text.split('\n').length, 14); // info; categories: opening, 3 records, closing; images and annotations: 3 each; '}'; ''
    await writeCocoDataset(path, { ...dataset, annotations: [] });
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')).annotations, []);
  });
});
