import { strict as assert } from 'node:assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { checkCocoInstancesFile } from '../../src/data/check-coco.js';
import { encodePng } from '../../src/io/image-node.js';
import { encodeRle } from '../../src/structures/rle.js';
import { compressRle } from '../../src/structures/rle-string.js';

/** A folder with one 4x3 PNG and a COCO file about it whose records `edit` may spoil. */
async function cocoFolder(
  edit: (coco: { images: Record<string, unknown>[]; annotations: Record<string, unknown>[] }) => void,
): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ape-check-coco-'));
  writeFileSync(join(dir, 'a.png'), await encodePng({ width: 4, height: 3, data: new Uint8Array(4 * 3 * 3) }));
  // A 2x2 square at x 1-2, y 0-1: 4 pixels (column-major, as COCO RLE is).
  const mask = new Uint8Array(12);
  for (const [x, y] of [
    [1, 0],
    [2, 0],
    [1, 1],
    [2, 1],
  ] as const)
    mask[y * 4 + x] = 1;
  const segmentation = compressRle(encodeRle(mask, 3, 4));
  const coco = {
    images: [{ id: 1, file_name: 'a.png', width: 4, height: 3 }],
    categories: [{ id: 1, name: 'square' }],
    annotations: [
      { id: 1, image_id: 1, category_id: 1, bbox: [1, 0, 2, 2], area: 4, iscrowd: 0, score: 0.9, segmentation },
    ] as Record<string, unknown>[],
  };
  edit(coco);
  writeFileSync(join(dir, 'annotations.json'), JSON.stringify(coco));
  return join(dir, 'annotations.json');
}

describe('checkCocoInstancesFile', () => {
  it('accepts a consistent file and counts it', async () => {
    const report = await checkCocoInstancesFile(await cocoFolder(() => undefined));
    assert.deepEqual(report, {
      ok: true,
      issues: [],
      stats: { images: 1, annotations: 1, categories: 1, byCategory: { square: 1 } },
    });
  });

  it('names the record and field of each inconsistency', async () => {
    const file = await cocoFolder((coco) => {
      coco.images.push({ id: 2, file_name: 'missing.png', width: 4, height: 3 });
      coco.annotations[0]!.area = 5;
      coco.annotations.push({
        id: 2,
        image_id: 2,
        category_id: 1,
        bbox: [3, 2, 2, 2],
        area: 4,
        iscrowd: 0,
        score: 1.5,
      });
    });
    // The picture on disk is not the size the file says.
    writeFileSync(
      join(dirname(file), 'a.png'),
      await encodePng({ width: 5, height: 3, data: new Uint8Array(5 * 3 * 3) }),
    );
    const report = await checkCocoInstancesFile(file);
    assert.equal(report.ok, false);
    assert.equal(report.issues.length, 5);
    const text = report.issues.map((i) => `${i.file}: ${i.record}: ${i.field}: ${i.message}`).join('\n');
    assert.match(text, /annotations\.json: image id 1: width\/height: 4x3 but .*a\.png is 5x3/);
    assert.match(text, /annotations\.json: annotation id 1: area: 5 but the mask has 4 pixels/);
    assert.match(text, /annotations\.json: image id 2: file_name: .*missing\.png: ENOENT/);
    assert.match(text, /annotations\.json: annotation id 2: bbox: \[3,2,2,2\] reaches outside image 2 \(4x3\)/);
    assert.match(text, /annotations\.json: annotation id 2: score: 1\.5 is not a number from 0 to 1/);
  });

  it('reports what the dataset reader refuses, with its place in the file', async () => {
    const file = await cocoFolder((coco) => {
      coco.annotations[0]!.category_id = 7;
    });
    const report = await checkCocoInstancesFile(file);
    assert.equal(report.ok, false);
    assert.equal(report.issues.length, 1);
    assert.deepEqual(report.issues[0], {
      file: 'annotations.json',
      record: 'annotations[0] (id 1)',
      field: '-',
      message: "'category_id' 7 is not in 'categories'",
    });
  });
});
