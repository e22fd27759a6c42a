import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readGrayPng, readImage } from '../../src/io/image-node.js';
import { decodeRle, rleArea, rleToBbox } from '../../src/structures/rle.js';
import { decompressRle } from '../../src/structures/rle-string.js';
import { writeSynthDataset } from '../../src/data/synth/write-dataset.js';
import { checkDataset } from '../../src/data/synth/checker.js';
import type { GroundingFile, InstancesFile, SegmentsFile, SemanticIndexFile } from '../../src/data/synth/formats.js';
import { SYNTH_CATEGORIES } from '../../src/data/synth/categories.js';

let root: string;
const options = { images: 5, seed: 11, size: 96 };

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ape-synth-'));
  await writeSynthDataset(join(root, 'a'), options);
  await writeSynthDataset(join(root, 'b'), options);
  await writeSynthDataset(join(root, 'c'), { ...options, seed: 12 });
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of (await readdir(join(dir, prefix), { withFileTypes: true })).sort((x, y) =>
    x.name.localeCompare(y.name),
  )) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else out.push(rel);
  }
  return out;
}

const json = async <T>(dir: string, name: string) => JSON.parse(await readFile(join(root, dir, name), 'utf8')) as T;

test('layout: exactly the documented files', async () => {
  const names = ['000000.png', '000001.png', '000002.png', '000003.png', '000004.png'];
  assert.deepEqual(
    (await listFiles(join(root, 'a'))).sort(),
    [
      'grounding.json',
      ...names.map((n) => `images/${n}`),
      'instances.json',
      'segments.json',
      'semantic.json',
      ...names.map((n) => `semantic/${n}`),
    ].sort(),
  );
  const inst = await json<InstancesFile>('a', 'instances.json');
  assert.deepEqual(
    inst.images.map((i) => [i.id, i.file_name, i.width, i.height]),
    names.map((n, k) => [k + 1, n, 96, 96]),
  );
  assert.deepEqual(inst.categories, SYNTH_CATEGORIES);
  const thing = inst.annotations.find((a) => a.attributes !== undefined)!;
  assert.deepEqual(Object.keys(thing), [
    'id',
    'image_id',
    'category_id',
    'segmentation',
    'area',
    'bbox',
    'iscrowd',
    'attributes',
  ]);
  assert.equal(typeof thing.segmentation.counts, 'string');
  const img = await readImage(join(root, 'a', 'images', names[0]!));
  assert.equal(img.width, 96);
});

test('determinism: same seed gives identical bytes in every file; another seed differs', async () => {
  const files = await listFiles(join(root, 'a'));
  for (const f of files) {
    assert.deepEqual(await readFile(join(root, 'b', f)), await readFile(join(root, 'a', f)), f);
  }
  let differing = 0;
  for (const f of files)
    if (!(await readFile(join(root, 'c', f))).equals(await readFile(join(root, 'a', f)))) differing++;
  // Every image, label map and annotation file changes (semantic.json only lists categories and names).
  assert.equal(differing, files.length - 1);
});

test('a non-empty folder is refused unless overwrite, and overwrite leaves no stale images', async () => {
  const dir = join(root, 'd');
  await writeSynthDataset(dir, { images: 3, seed: 1, size: 32 });
  await assert.rejects(
    writeSynthDataset(dir, { images: 2, seed: 1, size: 32 }),
    /d is not empty; choose a new folder or pass overwrite/,
  );
  await writeSynthDataset(dir, { images: 2, seed: 1, size: 32, overwrite: true });
  assert.deepEqual((await readdir(join(dir, 'images'))).sort(), ['000000.png', '000001.png']);
  await writeFile(join(dir, 'notes.txt'), 'mine');
  await assert.rejects(
    writeSynthDataset(dir, { images: 2, seed: 1, size: 32, overwrite: true }),
    /not part of a split \(notes.txt\)/,
  );
  await assert.rejects(
    writeSynthDataset(join(root, 'e'), { images: 0, seed: 1 }),
    /images must be a positive integer, got 0/,
  );
});

test('the checker accepts a fresh split and counts what is in it', async () => {
  const report = await checkDataset(join(root, 'a'));
  assert.deepEqual(report.issues, []);
  assert.equal(report.ok, true);
  const inst = await json<InstancesFile>('a', 'instances.json');
  const things = inst.annotations.filter((a) => a.attributes !== undefined).length;
  assert.equal(report.stats.images, 5);
  assert.equal(report.stats.things, things);
  assert.equal(report.stats.stuff, inst.annotations.length - things);
  const grounding = await json<GroundingFile>('a', 'grounding.json');
  assert.equal(
    report.stats.sentences,
    grounding.annotations.reduce((n, a) => n + a.sentences.length, 0),
  );
  assert.equal(report.stats.segments, (await json<SegmentsFile>('a', 'segments.json')).annotations.length);
});

test("RLE masks decode to exactly the semantic PNG labels; boxes and areas are the masks'", async () => {
  const inst = await json<InstancesFile>('a', 'instances.json');
  const index = await json<SemanticIndexFile>('a', 'semantic.json');
  assert.equal(index.ignore_label, 255);
  for (const img of inst.images) {
    const entry = index.images.find((e) => e.id === img.id)!;
    assert.equal(entry.sem_seg_file_name, `semantic/${img.file_name}`);
    const label = await readGrayPng(join(root, 'a', entry.sem_seg_file_name));
    const rebuilt = new Uint8Array(img.width * img.height).fill(255);
    for (const a of inst.annotations.filter((x) => x.image_id === img.id)) {
      const rle = decompressRle(a.segmentation);
      assert.equal(a.area, rleArea(rle));
      assert.deepEqual(a.bbox, rleToBbox(rle));
      const m = decodeRle(rle);
      for (let i = 0; i < m.length; i++) {
        if (!m[i]) continue;
        assert.equal(rebuilt[i], 255, `image ${img.id}: pixel ${i} claimed twice`);
        rebuilt[i] = a.category_id;
      }
    }
    assert.ok(!rebuilt.includes(255), `image ${img.id}: every pixel is a thing or stuff`);
    assert.deepEqual(label.data, rebuilt);
  }
});

test('grounding: thing referents carry their instance mask; all sentence kinds occur', async () => {
  const inst = await json<InstancesFile>('a', 'instances.json');
  const grounding = await json<GroundingFile>('a', 'grounding.json');
  const kinds = new Set<string>();
  for (const g of grounding.annotations) {
    for (const s of g.sentences) kinds.add(s.kind);
    if (g.instance_id !== undefined) {
      const a = inst.annotations.find((x) => x.id === g.instance_id)!;
      assert.deepEqual([g.segmentation, g.category_id, g.image_id], [a.segmentation, a.category_id, a.image_id]);
    } else {
      assert.ok(SYNTH_CATEGORIES.find((c) => c.id === g.category_id)!.isthing === 0);
    }
  }
  assert.deepEqual([...kinds].sort(), ['attribute', 'ordinal', 'spatial', 'stuff']);
});
