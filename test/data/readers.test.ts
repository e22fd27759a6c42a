import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCocoInstances, readCocoInstances } from '../../src/data/readers/coco.js';
import { readSegments } from '../../src/data/readers/segments.js';
import { readSemanticFolders, pngSize } from '../../src/data/readers/semantic.js';
import { writeImage } from '../../src/io/image-node.js';

const base = () => ({
  images: [{ id: 1, file_name: 'a.png', width: 10, height: 8 }],
  categories: [
    { id: 3, name: 'dog' },
    { id: 7, name: 'sky', isthing: 0, image_count: 16 },
  ],
  annotations: [
    { id: 11, image_id: 1, category_id: 3, bbox: [1, 2, 3, 4], segmentation: [[1, 2, 4, 2, 4, 6]], iscrowd: 0 },
    {
      id: 12,
      image_id: 1,
      category_id: 7,
      bbox: [0, 0, 10, 2],
      segmentation: { size: [8, 10], counts: [0, 80] },
      iscrowd: 1,
    },
  ],
});

test('COCO instances: images, boxes to xyxy, polygons, RLE, crowd, isthing, image_count', () => {
  const d = parseCocoInstances(base(), '/data/x/instances.json');
  assert.equal(d.kind, 'detection');
  assert.equal(d.federated, false);
  assert.deepEqual(d.categories, [
    { id: 3, name: 'dog', isThing: true },
    { id: 7, name: 'sky', isThing: false, imageCount: 16 },
  ]);
  assert.equal(d.images[0]!.file, '/data/x/a.png');
  const [a, b] = d.images[0]!.annotations;
  assert.deepEqual(a!.box, [1, 2, 4, 6]);
  assert.deepEqual(a!.segmentation, [[1, 2, 4, 2, 4, 6]]);
  assert.equal(b!.isCrowd, true);
  assert.deepEqual(b!.segmentation, { size: [8, 10], counts: [0, 80] });
});

test('COCO instances: LVIS federated fields', () => {
  const json = base() as Record<string, unknown>;
  (json.images as Array<Record<string, unknown>>)[0]!.neg_category_ids = [7];
  (json.images as Array<Record<string, unknown>>)[0]!.not_exhaustive_category_ids = [3];
  const d = parseCocoInstances(json, 'lvis.json');
  assert.equal(d.federated, true);
  assert.deepEqual(d.images[0]!.negCategoryIds, [7]);
  assert.deepEqual(d.images[0]!.notExhaustiveCategoryIds, [3]);
  (json.images as Array<Record<string, unknown>>)[0]!.neg_category_ids = [99];
  assert.throws(
    () => parseCocoInstances(json, 'lvis.json'),
    /lvis\.json: images\[0\] \(id 1\): 'neg_category_ids' names unknown category 99/,
  );
});

test('COCO instances: malformed records name the file, the record and the field', () => {
  const cases: Array<[(j: ReturnType<typeof base>) => void, RegExp]> = [
    [
      (j) => ((j.annotations[0] as Record<string, unknown>).image_id = 5),
      /f\.json: annotations\[0\] \(id 11\): 'image_id' 5 is not in 'images'/,
    ],
    [
      (j) => ((j.annotations[0] as Record<string, unknown>).bbox = [1, 2, 3]),
      /annotations\[0\] \(id 11\): 'bbox' must be 4 finite numbers/,
    ],
    [(j) => ((j.annotations[0] as Record<string, unknown>).bbox = [1, 2, -3, 4]), /'bbox' has a negative size/],
    [(j) => ((j.annotations[0] as Record<string, unknown>).category_id = 4), /'category_id' 4 is not in 'categories'/],
    [
      (j) => ((j.annotations[0] as Record<string, unknown>).segmentation = [[1, 2, 3]]),
      /'segmentation\[0\]' has an odd number \(3\)/,
    ],
    [
      (j) => ((j.annotations[1] as Record<string, unknown>).segmentation = { size: [8, 9], counts: [0, 72] }),
      /annotations\[1\] \(id 12\): RLE 'size' \[8,9\] does not match the image's \[8, 10\]/,
    ],
    [
      (j) => ((j.annotations[1] as Record<string, unknown>).segmentation = { size: [8, 10], counts: [0, 79] }),
      /RLE 'counts' cover 79 pixels, the image has 80/,
    ],
    [
      (j) => ((j.images[0] as Record<string, unknown>).width = 0),
      /images\[0\] \(id 1\): 'width' must be positive, got 0/,
    ],
    [
      (j) => j.images.push({ id: 1, file_name: 'b.png', width: 1, height: 1 }),
      /images\[1\] \(id 1\): duplicate image id 1/,
    ],
    [(j) => ((j as Record<string, unknown>).categories = undefined), /'categories' is missing/],
  ];
  for (const [edit, message] of cases) {
    const json = base();
    edit(json);
    assert.throws(() => parseCocoInstances(json, 'f.json'), message);
  }
  assert.throws(() => parseCocoInstances([], 'f.json'), /f\.json: top level: expected an object, got an array of 0/);
});

test('COCO instances from disk: missing and invalid files are named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ape-readers-'));
  assert.throws(() => readCocoInstances(join(dir, 'none.json')), /none\.json: cannot read \(ENOENT\)/);
  writeFileSync(join(dir, 'bad.json'), '{"images": [');
  assert.throws(() => readCocoInstances(join(dir, 'bad.json')), /bad\.json: not valid JSON/);
});

test('grounding files: sentences as strings or {sent}; annotations without any are dropped', () => {
  const json = base() as Record<string, unknown>;
  const anns = json.annotations as Array<Record<string, unknown>>;
  anns[0]!.sentences = ['the dog on the left', { sent: 'a brown dog', raw: 'A brown dog.' }];
  const d = parseCocoInstances(json, 'g.json', { kind: 'grounding' });
  assert.equal(d.images[0]!.annotations.length, 1);
  assert.deepEqual(d.images[0]!.annotations[0]!.sentences, ['the dog on the left', 'a brown dog']);
  anns[0]!.sentences = [''];
  assert.throws(
    () => parseCocoInstances(json, 'g.json', { kind: 'grounding' }),
    /g\.json: annotations\[0\] \(id 11\): 'sentences\[0\]' must be a non-empty string/,
  );
});

test('class-agnostic segments: SA-1B per-image file and COCO-like file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ape-segments-'));
  const sa1b = {
    image: { image_id: 5, width: 4, height: 2, file_name: 'sa_5.jpg' },
    annotations: [{ id: 1, bbox: [0, 0, 2, 2], segmentation: { size: [2, 4], counts: [0, 4, 4] }, predicted_iou: 0.9 }],
  };
  writeFileSync(join(dir, 'sa_5.json'), JSON.stringify(sa1b));
  const one = readSegments(join(dir, 'sa_5.json'));
  assert.equal(one.kind, 'class-agnostic');
  assert.equal(one.images[0]!.file, join(dir, 'sa_5.jpg'));
  assert.deepEqual(one.images[0]!.annotations[0]!.box, [0, 0, 2, 2]);
  assert.equal(one.images[0]!.annotations[0]!.categoryId, -1);
  const folder = readSegments(dir);
  assert.equal(folder.images.length, 1);
  const coco = {
    images: [{ id: 1, file_name: 'a.png', width: 4, height: 2 }],
    annotations: [{ id: 1, image_id: 1, bbox: [0, 0, 1, 1] }],
  };
  writeFileSync(join(dir, 'segments.json'), JSON.stringify(coco));
  assert.equal(readSegments(join(dir, 'segments.json')).images[0]!.annotations[0]!.categoryId, -1);
});

test('semantic folders: pairs images with label PNGs, sizes from the PNG header', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ape-semantic-'));
  mkdirSync(join(dir, 'images'));
  mkdirSync(join(dir, 'semantic'));
  await writeImage(join(dir, 'images', '0001.png'), { width: 5, height: 3, data: new Uint8Array(45) });
  await writeImage(join(dir, 'semantic', '0001.png'), { width: 5, height: 3, data: new Uint8Array(15) });
  assert.deepEqual(pngSize(join(dir, 'semantic', '0001.png')), { width: 5, height: 3 });
  const d = readSemanticFolders({
    imageDir: join(dir, 'images'),
    labelDir: join(dir, 'semantic'),
    categories: [{ id: 0, name: 'sky', isThing: false }],
  });
  assert.equal(d.images.length, 1);
  assert.equal(d.images[0]!.semanticFile, join(dir, 'semantic', '0001.png'));
  await writeImage(join(dir, 'semantic', '0002.png'), { width: 5, height: 3, data: new Uint8Array(15) });
  assert.throws(
    () => readSemanticFolders({ imageDir: join(dir, 'images'), labelDir: join(dir, 'semantic'), categories: [] }),
    /0002\.png: no image named 0002\.\*/,
  );
});
