import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readImage } from '../../src/io/image-node.js';
import { decodeRle } from '../../src/structures/rle.js';
import { decompressRle } from '../../src/structures/rle-string.js';
import { outputStems } from '../../src/cli/predict.js';
import { makeTestModelDir } from '../server/test-model.js';
import { ape, repoRoot as root } from './ape-cli.js';

let model: { dir: string; remove: () => Promise<void> };
let out: string;

before(async () => {
  model = await makeTestModelDir(5);
  out = await mkdtemp(join(tmpdir(), 'ape-predict-'));
});

after(async () => {
  await model?.remove();
  if (out) await rm(out, { recursive: true, force: true });
});

test('ape predict writes NAME.json (COCO results), NAME.png and NAME.semantic.png and prints a table', async () => {
  const images = ['examples/scene-1.png', 'examples/scene-2.png'];
  const r = ape([
    'predict',
    ...images,
    '--vocab',
    'circle,star',
    '--vocab',
    'sky',
    '--sentence',
    'the red star',
    '--model',
    model.dir,
    '--threshold',
    '0',
    '--semantic-threshold',
    '0',
    '--out',
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  // The first use exports the text tower and the network, each with its progress: the graphs or
  // modules recorded, then the bytes written, before the line that says where the export went.
  assert.match(r.stderr, /^ape predict: recording: (\d+)\/\1 [\d.]+ (graph\/s|s\/graph) /m);
  assert.match(r.stderr, /^ape predict: recording: \d+\/\d+ [\d.]+ (module\/s|s\/module) /m);
  const written = [...r.stderr.matchAll(/^ape predict: writing: (\d+)\/(\d+) .*\nape predict: exported in /gm)];
  assert.equal(written.length, 2, r.stderr);
  for (const w of written) assert.equal(w[1], w[2]);
  assert.deepEqual((await readdir(out)).sort(), [
    'results.json',
    'scene-1.json',
    'scene-1.png',
    'scene-1.semantic.png',
    'scene-2.json',
    'scene-2.png',
    'scene-2.semantic.png',
  ]);
  assert.match(r.stdout, /scene-2\.png: 256x256, \d+ instances/);
  assert.match(r.stdout, /prompt\s+kind\s+score\s+box/);
  assert.match(r.stdout, /grounding "the red star": 0\.\d+ at \[/);
  assert.match(r.stdout, new RegExp(`pictures and JSON for 2 images are in ${out}`));

  const json = JSON.parse(await readFile(join(out, 'scene-2.json'), 'utf8'));
  assert.deepEqual(json.image, { width: 256, height: 256, id: 2, file: 'examples/scene-2.png' });
  assert.deepEqual(
    json.prompts.map((p: { text: string; kind: string }) => `${p.kind}:${p.text}`),
    ['vocabulary:circle', 'vocabulary:star', 'vocabulary:sky', 'sentence:the red star'],
  );
  assert.ok(json.instances.length > 0);
  for (const inst of json.instances) {
    assert.deepEqual(Object.keys(inst).sort(), [
      'bbox',
      'category_id',
      'image_id',
      'kind',
      'prompt',
      'query',
      'score',
      'segmentation',
    ]);
    assert.equal(inst.image_id, 2);
    assert.equal(inst.prompt, json.prompts[inst.category_id].text);
    assert.equal(decodeRle(decompressRle(inst.segmentation)).length, 256 * 256);
  }
  assert.equal(json.grounding.length, 1);
  assert.ok(json.semantic.segments.length > 0);

  const input = await readImage(join(root, 'examples/scene-2.png'));
  const drawn = await readImage(join(out, 'scene-2.png'));
  assert.equal(drawn.width, 256);
  let changed = 0;
  for (let i = 0; i < input.data.length; i++) if (input.data[i] !== drawn.data[i]) changed++;
  assert.ok(changed > 1000, `only ${changed} channel values differ from the input`);
  const semantic = await readImage(join(out, 'scene-2.semantic.png'));
  assert.equal(semantic.height, 256);
  assert.ok(semantic.width > 256, 'a legend panel beside the map');
});

test('ape predict: a first encoding of many new prompts shows progress (plain lines on a pipe); the next run finds them stored', async () => {
  const syllables = ['ka', 'lo', 'mi', 'ne', 'su', 'ta', 'ri', 'vo'];
  const names = Array.from({ length: 1200 }, (_, i) =>
    [i % 8, (i >> 3) % 8, (i >> 6) % 8, (i >> 9) % 8].map((k) => syllables[k]).join(''),
  );
  const run = () =>
    ape([
      'predict',
      'examples/scene-2.png',
      '--vocab',
      names.join(','),
      '--model',
      model.dir,
      '--out',
      out,
      '--overwrite',
    ]);
  const first = run();
  assert.equal(first.code, 0, first.stderr);
  const lines = first.stderr.split('\n').filter((l) => l.startsWith('ape predict: encoding prompts:'));
  assert.ok(lines.length >= 1, first.stderr);
  assert.match(
    lines.at(-1)!,
    /^ape predict: encoding prompts: 1200\/1200 [\d.]+ (prompt\/s|s\/prompt) elapsed \d\d:\d\d eta 00:00$/,
  );
  const second = run();
  assert.equal(second.code, 0, second.stderr);
  assert.doesNotMatch(second.stderr, /encoding prompts|recording:|writing:/);
  // A few names are not enough to show progress.
  const few = ape([
    'predict',
    'examples/scene-2.png',
    '--vocab',
    'tesk,varo',
    '--model',
    model.dir,
    '--out',
    out,
    '--overwrite',
  ]);
  assert.equal(few.code, 0, few.stderr);
  assert.doesNotMatch(few.stderr, /encoding prompts/);
});

test('ape predict: usage errors and a missing model are reported plainly', () => {
  const noPrompt = ape(['predict', 'examples/scene-1.png', '--model', model.dir]);
  assert.equal(noPrompt.code, 2);
  assert.match(noPrompt.stderr, /give prompts: --vocab, --sentence or --prompt/);
  const badThreshold = ape([
    'predict',
    'examples/scene-1.png',
    '--vocab',
    'a',
    '--threshold',
    '2',
    '--model',
    model.dir,
  ]);
  assert.equal(badThreshold.code, 2);
  assert.match(badThreshold.stderr, /--threshold must be a number from 0 to 1, got '2'/);
  const hexThreshold = ape([
    'predict',
    'examples/scene-1.png',
    '--vocab',
    'a',
    '--threshold',
    '0x1',
    '--model',
    model.dir,
  ]);
  assert.equal(hexThreshold.code, 2);
  assert.match(hexThreshold.stderr, /--threshold must be a number from 0 to 1, got '0x1'/);
  const noModel = ape([
    'predict',
    'examples/scene-1.png',
    '--vocab',
    'a',
    '--model',
    join(out, 'nothing-here'),
    '--out',
    out,
  ]);
  assert.equal(noModel.code, 2);
  assert.match(noModel.stderr, /--model .*nothing-here: no such folder, and not a released model name/);
});

test('ape predict with the shipped model: an unknown word is warned about (stderr and JSON); the semantic threshold leaves the unsure pixels unlabelled', async () => {
  const dir = join(out, 'vocab');
  const r = ape(['predict', 'examples/scene-2.png', '--vocab', 'cat,circle', '--out', dir]);
  assert.equal(r.code, 0, r.stderr);
  const warning =
    "'cat' is not in this model's vocabulary, so prompts with it get meaningless scores; this model knows 41 words: above, at, below, blue, bottom, circle,";
  assert.ok(r.stderr.includes(`warning: ${warning}`), r.stderr);
  const json = JSON.parse(await readFile(join(dir, 'scene-2.json'), 'utf8'));
  assert.equal(json.warnings.length, 1);
  assert.ok(json.warnings[0].startsWith(warning));
  const labelled = (j: { semantic: { segments: { prompt: string; area: number }[] } }, prompt: string) =>
    j.semantic.segments.filter((s) => s.prompt === prompt).reduce((a, s) => a + s.area, 0) / (256 * 256);
  // Default 0.1: the circle (about 4% of scene-2) and little else.
  assert.ok(labelled(json, 'circle') > 0.01 && labelled(json, 'circle') < 0.1, `circle ${labelled(json, 'circle')}`);
  // 0 is APE's own map: two prompts share every pixel.
  const ape0 = ape([
    'predict',
    'examples/scene-2.png',
    '--vocab',
    'cat,circle',
    '--semantic-threshold',
    '0',
    '--out',
    join(out, 'vocab0'),
  ]);
  assert.equal(ape0.code, 0, ape0.stderr);
  const json0 = JSON.parse(await readFile(join(out, 'vocab0', 'scene-2.json'), 'utf8'));
  assert.equal(labelled(json0, 'circle') + labelled(json0, 'cat'), 1);
  const bad = ape(['predict', 'examples/scene-2.png', '--vocab', 'circle', '--semantic-threshold', 'x']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--semantic-threshold must be a number from 0 to 1, got 'x'/);
});

test('output names stay unique', () => {
  assert.deepEqual(outputStems(['a/x.png', 'b/x.jpg', 'y.webp', 'c/x.png']), ['x', 'x-2', 'y', 'x-3']);
});

test('examples/library.mjs runs against the built package', {
  skip: !existsSync(join(root, 'dist', 'index.js')) && 'dist/ is not built (npm run build)',
}, async () => {
  const dir = join(out, 'library');
  const r = spawnSync(process.execPath, ['examples/library.mjs', 'examples/scene-2.png', model.dir, dir], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual((await readdir(dir)).sort(), [
    'library-instances.png',
    'library-results.json',
    'library-semantic.png',
  ]);
  const results = JSON.parse(await readFile(join(dir, 'library-results.json'), 'utf8'));
  assert.ok(Array.isArray(results));
  assert.match(r.stdout, /"the red cross to the right of the red star" -> \[/);
});
