import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { categoryTable } from '../../src/cli/eval-model.js';
import { writeSynthDataset } from '../../src/data/synth/write-dataset.js';
import { evaluateModel } from '../../src/evaluation/model-eval.js';
import { loadModel } from '../../src/inference/model-files.js';
import { makeTestModelDir } from '../server/test-model.js';
import { ape } from './ape-cli.js';

let model: { dir: string; remove: () => Promise<void> };
let work: string;

before(async () => {
  model = await makeTestModelDir(3);
  work = await mkdtemp(join(tmpdir(), 'ape-eval-model-'));
  await writeSynthDataset(join(work, 'data'), { images: 2, seed: 9, size: 96 });
});

after(async () => {
  await model?.remove();
  if (work) await rm(work, { recursive: true, force: true });
});

test('ape eval model writes the JSON contract with per_category, equal to an in-process evaluateModel', async () => {
  const out = join(work, 'eval.json');
  const r = ape(['eval', 'model', '--model', model.dir, '--data', join(work, 'data'), '--json', out]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(await readFile(out, 'utf8'));
  assert.deepEqual(Object.keys(json), ['bbox', 'segm', 'miou', 'referring_acc', 'per_category']);
  const loaded = await loadModel(model.dir);
  const expected = await evaluateModel(loaded, join(work, 'data'));
  loaded.dispose();
  assert.deepEqual(json.bbox, expected.bbox);
  assert.deepEqual(json.segm, expected.segm);
  assert.equal(json.miou, expected.miou);
  assert.equal(json.referring_acc, expected.referring_acc);
  assert.deepEqual(
    json.per_category,
    expected.perCategory.map((c) => ({
      id: c.id,
      name: c.name,
      isthing: c.isThing ? 1 : 0,
      box_ap: c.boxAp,
      mask_ap: c.maskAp,
      iou: c.iou,
    })),
  );
  // The table names every category.
  for (const c of expected.perCategory)
    assert.match(r.stdout, new RegExp(`^${c.name}\\s+${c.isThing ? 'thing' : 'stuff'}\\s`, 'm'));
});

test('ape eval model: a first encoding of many new category names shows progress (plain lines on a pipe) before the images', async () => {
  const data = join(work, 'many');
  await writeSynthDataset(data, { images: 1, seed: 4, size: 96 });
  const path = join(data, 'instances.json');
  const instances = JSON.parse(await readFile(path, 'utf8')) as { categories: { id: number; name: string }[] };
  const first = Math.max(...instances.categories.map((c) => c.id)) + 1;
  const syllables = ['ka', 'lo', 'mi', 'ne', 'su', 'ta', 'ri', 'vo'];
  for (let i = 0; i < 1200; i++)
    instances.categories.push({
      id: first + i,
      name: [i % 8, (i >> 3) % 8, (i >> 6) % 8, (i >> 9) % 8].map((k) => syllables[k]).join(''),
      isthing: 1,
    } as { id: number; name: string });
  await writeFile(path, JSON.stringify(instances));
  const total = instances.categories.length;
  const r = ape(['eval', 'model', '--model', model.dir, '--data', data, '--engine', 'tfjs']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stderr.split('\n');
  const encoding = lines.filter((l) => l.startsWith('ape eval model: encoding prompts:'));
  assert.ok(encoding.length >= 1, r.stderr);
  // The new names (the dataset's own may be stored already by the runs above).
  const last =
    /^ape eval model: encoding prompts: (\d+)\/(\d+) [\d.]+ (prompt\/s|s\/prompt) elapsed \d\d:\d\d eta 00:00$/.exec(
      encoding.at(-1)!,
    );
  assert.ok(last, encoding.at(-1));
  assert.equal(last[1], last[2]);
  assert.ok(Number(last[1]) >= 1200 && Number(last[1]) <= total, last[0]);
  // Before the first image is evaluated.
  const firstImage = lines.findIndex((l) => l.startsWith('eval'));
  assert.ok(firstImage < 0 || lines.indexOf(encoding.at(-1)!) < firstImage, r.stderr);
});

test('ape eval model --size N evaluates at that input size; a size that is not a multiple of 64 is refused', async () => {
  const out = join(work, 'eval-64.json');
  const r = ape(['eval', 'model', '--model', model.dir, '--data', join(work, 'data'), '--size', '64', '--json', out]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(await readFile(out, 'utf8'));
  const loaded = await loadModel(model.dir, { inputSize: 64 });
  const expected = await evaluateModel(loaded, join(work, 'data'));
  loaded.dispose();
  assert.deepEqual(json.bbox, expected.bbox);
  assert.equal(json.miou, expected.miou);
  const bad = ape(['eval', 'model', '--model', model.dir, '--data', join(work, 'data'), '--size', '100']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--size must be a multiple of 64/);
});

test('ape eval model on a folder without instances.json names it', () => {
  const r = ape(['eval', 'model', '--model', model.dir, '--data', work]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`${work.replace(/[/\\]/g, '.')}.*no instances\\.json`));
});

test('categoryTable: percent with one decimal, n/a where undefined', () => {
  const table = categoryTable([
    { id: 1, name: 'circle', isThing: true, boxAp: 0.5, maskAp: 0.25, iou: 0.125 },
    { id: 9, name: 'sky', isThing: false, boxAp: null, maskAp: null, iou: 0.9 },
  ]);
  assert.deepEqual(table.split('\n'), [
    'category  kind    box AP mask AP    IoU',
    'circle    thing     50.0    25.0   12.5',
    'sky       stuff      n/a     n/a   90.0',
  ]);
});
