import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/inference/model-files.js';
import { makeTestModelDir } from '../server/test-model.js';
import { ape } from './ape-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'ape-predict-inputs-'));
let model: { dir: string; remove: () => Promise<void> };
before(async () => {
  model = await makeTestModelDir(7);
});
after(async () => {
  await model?.remove();
  rmSync(dir, { recursive: true, force: true });
});

test('ape predict then ape eval coco: --categories gives the dataset ids, results.json is scored as is', () => {
  const data = join(dir, 'synth');
  const made = ape(['data', 'synth', '--out', data, '--images', '3', '--seed', '11']);
  assert.equal(made.code, 0, made.stderr);
  const out = join(dir, 'pred');
  // The shipped model, every category of the ground truth as the vocabulary, a folder as input.
  const p = ape([
    'predict',
    join(data, 'images'),
    '--categories',
    join(data, 'instances.json'),
    '--threshold',
    '0.05',
    '--out',
    out,
  ]);
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, /results\.json holds every instance as COCO results with the category and image ids of /);
  const gt = JSON.parse(readFileSync(join(data, 'instances.json'), 'utf8')) as {
    images: { id: number }[];
    categories: { id: number; name: string }[];
  };
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
    image_id: number;
    category_id: number;
    prompt: string;
  }[];
  assert.ok(results.length > 0);
  const idOf = new Map(gt.categories.map((c) => [c.name, c.id]));
  for (const r of results) {
    assert.equal(r.category_id, idOf.get(r.prompt));
    assert.ok(gt.images.some((im) => im.id === r.image_id));
  }
  const e = ape([
    'eval',
    'coco',
    '--gt',
    join(data, 'instances.json'),
    '--results',
    join(out, 'results.json'),
    '--type',
    'bbox',
  ]);
  assert.equal(e.code, 0, e.stderr);
  const ap = Number(
    /Average Precision {2}\(AP\) @\[ IoU=0\.50:0\.95 \| area= {3}all \| maxDets=100 \] = (\d\.\d+)/.exec(e.stdout)?.[1],
  );
  // The shipped model finds these shapes (test split AP 0.452); a mismatch of ids would give 0.
  assert.ok(ap > 0.2, `AP ${ap}\n${e.stdout}`);
  const stranger = ape([
    'predict',
    'examples/scene-1.png',
    '--categories',
    join(data, 'instances.json'),
    '--out',
    join(dir, 'x'),
  ]);
  assert.equal(stranger.code, 2);
  assert.match(
    stranger.stderr,
    /--categories .*instances\.json: 1 input\(s\) are not images of it \(matched by file name\): examples\/scene-1\.png/,
  );
});

test('ape predict: every input checked before the model loads (files, folders, patterns); earlier results are never overwritten', () => {
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  writeFileSync(join(empty, 'notes.txt'), 'no images here');
  const bad = ape([
    'predict',
    'nope.png',
    empty,
    'examples/zzz*.png',
    'examples/scene-1.png',
    '--vocab',
    'circle',
    '--model',
    model.dir,
  ]);
  assert.equal(bad.code, 2);
  assert.match(
    bad.stderr,
    /ape predict: 3 inputs cannot be used:\n {2}nope\.png: no such file or folder\n {2}.*empty: a folder with no images \(\.png, \.jpg, \.jpeg, \.webp\)\n {2}examples\/zzz\*\.png: matches no file\n/,
  );
  assert.match(bad.stderr, /usage: ape predict IMAGE\|FOLDER\.\.\./);

  const out = join(dir, 'runs');
  const first = ape(['predict', 'examples/scene-[12].png', '--vocab', 'circle', '--model', model.dir, '--out', out]);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(
    readdirSync(out)
      .filter((f) => f.endsWith('.json'))
      .sort(),
    ['results.json', 'scene-1.json', 'scene-2.json'],
  );
  const before = readFileSync(join(out, 'scene-1.json'), 'utf8');
  const second = ape(['predict', 'examples/scene-1.png', '--vocab', 'star', '--model', model.dir, '--out', out]);
  assert.equal(second.code, 0, second.stderr);
  assert.match(
    second.stderr,
    new RegExp(`${out} already has results; writing to ${out}-2 \\(--overwrite writes into ${out}\\)`),
  );
  assert.equal(readFileSync(join(out, 'scene-1.json'), 'utf8'), before);
  assert.deepEqual(
    JSON.parse(readFileSync(join(`${out}-2`, 'scene-1.json'), 'utf8')).prompts.map((p: { text: string }) => p.text),
    ['star'],
  );
  const third = ape([
    'predict',
    'examples/scene-1.png',
    '--vocab',
    'heart',
    '--model',
    model.dir,
    '--out',
    out,
    '--overwrite',
  ]);
  assert.equal(third.code, 0, third.stderr);
  assert.deepEqual(
    JSON.parse(readFileSync(join(out, 'scene-1.json'), 'utf8')).prompts.map((p: { text: string }) => p.text),
    ['heart'],
  );
  assert.deepEqual(
    readdirSync(dir)
      .filter((f) => f.startsWith('runs'))
      .sort(),
    ['runs', 'runs-2'],
  );
});

test('ape predict --size N runs the model at another input size; sizes that are not multiples of 64 are refused', async () => {
  const sized = await loadModel(model.dir, { inputSize: 64 });
  assert.equal(sized.config.input.size, 64);
  sized.dispose();
  await assert.rejects(loadModel(model.dir, { inputSize: 40 }), /input\.size 40 is not a multiple of the patch size/);
  const out = join(dir, 'sized');
  const r = ape([
    'predict',
    'examples/scene-1.png',
    '--vocab',
    'circle',
    '--model',
    model.dir,
    '--size',
    '64',
    '--threshold',
    '0',
    '--out',
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(readFileSync(join(out, 'scene-1.json'), 'utf8'));
  // Results are in the original image's pixels whatever the input size.
  assert.deepEqual([json.image.width, json.image.height], [256, 256]);
  assert.ok(json.instances.length > 0);
  const bad = ape(['predict', 'examples/scene-1.png', '--vocab', 'circle', '--model', model.dir, '--size', '100']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--size must be a multiple of 64 \(e\.g\. 512, 800, 1024\), got '100'/);
});
