import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { ape } from '../cli/ape-cli.js';
import { tinyConfig } from '../training/tiny-run.js';
import { makeTestModelDir } from '../server/test-model.js';
import { VOCAB, journalEntries, killGroup, makeImageFolder, startApe, waitUntil } from './fixtures.js';

const read = (path: string) => readFileSync(path, 'utf8');

describe('ape annotate on one machine', () => {
  let root = '';
  let images = '';
  const annotate = (out: string, ...extra: string[]) => [
    'annotate',
    images,
    '--vocab',
    VOCAB,
    '--out',
    join(root, out),
    ...extra,
  ];

  before(async () => {
    ({ root, images } = await makeImageFolder());
    const r = ape(annotate('ref'));
    assert.equal(r.code, 0, r.stderr);
  });

  it('writes a COCO file of the readable images and lists the unreadable one in errors.json', () => {
    const coco = JSON.parse(read(join(root, 'ref', 'annotations.json')));
    assert.deepEqual(
      coco.categories.map((c: { id: number; name: string }) => [c.id, c.name]),
      [
        [1, 'circle'],
        [2, 'square'],
        [3, 'triangle'],
        [4, 'star'],
      ],
    );
    // Image ids are positions in the sorted folder (000000, 000001, 000001b, 000002, 000003); the broken third is left out.
    assert.deepEqual(
      coco.images.map((i: { id: number }) => i.id),
      [1, 2, 4, 5],
    );
    assert.deepEqual(
      coco.images.map((i: { file_name: string }) => i.file_name),
      ['000000', '000001', '000002', '000003'].map((n) => `../synth/images/${n}.png`),
    );
    assert.ok(coco.annotations.length > 0);
    coco.annotations.forEach((a: { id: number; iscrowd: number; segmentation: { size: number[] } }, k: number) => {
      assert.equal(a.id, k + 1);
      assert.equal(a.iscrowd, 0);
      assert.deepEqual(a.segmentation.size, [128, 128]);
    });
    const { errors } = JSON.parse(read(join(root, 'ref', 'errors.json')));
    assert.equal(errors.length, 1);
    assert.equal(errors[0].file, join(images, '000001b.png'));
    assert.match(errors[0].reason, /000001b\.png/);
  });

  it('continues a killed run and writes the same files as the uninterrupted one', async () => {
    const run = startApe(annotate('resumed'));
    await waitUntil(
      () => journalEntries(join(root, 'resumed')) >= 1 || run.child.exitCode !== null,
      'the first finished image',
    );
    killGroup(run);
    await run.exit;
    const before = journalEntries(join(root, 'resumed'));
    assert.ok(before >= 1 && before < 5, `killed after ${before} images (expected mid-run)`);
    assert.equal(existsSync(join(root, 'resumed', 'annotations.json')), false);
    const again = ape(annotate('resumed'));
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, new RegExp(`resuming: ${before} of 5 images`));
    assert.equal(read(join(root, 'resumed', 'annotations.json')), read(join(root, 'ref', 'annotations.json')));
    assert.equal(read(join(root, 'resumed', 'errors.json')), read(join(root, 'ref', 'errors.json')));
  });

  it('gives the same file with two model processes, and draws overlays when asked', () => {
    const r = ape(annotate('two', '--workers', '2', '--overlays'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /2 model processes/);
    assert.equal(read(join(root, 'two', 'annotations.json')), read(join(root, 'ref', 'annotations.json')));
    assert.deepEqual(readdirSync(join(root, 'two', 'overlays')).sort(), [
      '1-000000.png',
      '2-000001.png',
      '4-000002.png',
      '5-000003.png',
    ]);
  });

  it('passes ape data check, and ape eval coco reads it (its own annotations as results score AP 1)', () => {
    const check = ape(['data', 'check', join(root, 'ref')]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /OK\nimages: 4\ncategories: 4/);
    const coco = JSON.parse(read(join(root, 'ref', 'annotations.json')));
    writeFileSync(join(root, 'results.json'), JSON.stringify(coco.annotations));
    for (const type of ['bbox', 'segm']) {
      const r = ape([
        'eval',
        'coco',
        '--gt',
        join(root, 'ref', 'annotations.json'),
        '--results',
        join(root, 'results.json'),
        '--type',
        type,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /\(AP\) @\[ IoU=0\.50:0\.95 \| area= {3}all \| maxDets=100 \] = 1\.000/);
    }
  });

  it('trains: ape train takes the folder as a detection dataset', () => {
    // The training tests' tiny model and settings, with the annotated folder as the only dataset.
    tinyConfig(root, {
      steps: 1,
      batchSize: 1,
      datasets: [{ name: 'annotated', type: 'detection', annotations: 'ref/annotations.json', weight: 1 }],
    });
    const r = ape(['train', '--config', join(root, 'config.json')]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(root, 'run', 'checkpoints')), r.stderr);
  });

  it('runs on TF.js with --engine tfjs: the annotations of the default engine (ONNX Runtime) to 0.5 px and 1e-3', () => {
    const r = ape(annotate('tfjs', '--engine', 'tfjs'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /1 model process \(tfjs\)/);
    const ort = JSON.parse(read(join(root, 'ref', 'annotations.json')));
    const tfjs = JSON.parse(read(join(root, 'tfjs', 'annotations.json')));
    assert.deepEqual(tfjs.images, ort.images);
    assert.equal(tfjs.annotations.length, ort.annotations.length);
    type Annotation = { image_id: number; category_id: number; bbox: number[]; score: number };
    ort.annotations.forEach((a: Annotation, k: number) => {
      const b = tfjs.annotations[k] as Annotation;
      assert.deepEqual([b.image_id, b.category_id], [a.image_id, a.category_id]);
      assert.ok(Math.abs(b.score - a.score) < 1e-3, `score ${b.score} vs ${a.score}`);
      b.bbox.forEach((v, i) => assert.ok(Math.abs(v - a.bbox[i]!) <= 0.5, `bbox ${b.bbox} vs ${a.bbox}`));
    });
  });

  it('refuses --engine with --queue (each worker picks its own), and a run with other prompts in the same folder', () => {
    const queued = ape(annotate('x', '--engine', 'tfjs', '--queue', 'redis://127.0.0.1:1/0'));
    assert.equal(queued.code, 2);
    assert.match(queued.stderr, /--engine is for local runs; with --queue, each ape worker takes its own --engine/);
    const other = ape(['annotate', images, '--vocab', 'circle', '--out', join(root, 'ref')]);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /journal\.jsonl belongs to a run that differs in its prompts or threshold/);
  });

  it('encodes many new prompts before the images, with progress (plain lines on a pipe) shown once for two model processes; a second run finds them stored', async () => {
    const model = await makeTestModelDir(5);
    try {
      const syllables = ['ka', 'lo', 'mi', 'ne', 'su', 'ta', 'ri', 'vo'];
      const names = Array.from({ length: 1200 }, (_, i) =>
        [i % 8, (i >> 3) % 8, (i >> 6) % 8, (i >> 9) % 8].map((k) => syllables[k]).join(''),
      );
      const run = (out: string) =>
        ape([
          'annotate',
          images,
          '--vocab',
          names.join(','),
          '--model',
          model.dir,
          '--out',
          join(root, out),
          '--workers',
          '2',
          '--engine',
          'tfjs',
        ]);
      const first = run('many');
      assert.equal(first.code, 0, first.stderr);
      const lines = first.stderr.split('\n');
      const encoding = lines.filter((l) => l.startsWith('ape annotate: encoding prompts:'));
      assert.ok(encoding.length >= 1, first.stderr);
      assert.match(
        encoding.at(-1)!,
        /^ape annotate: encoding prompts: 1200\/1200 [\d.]+ (prompt\/s|s\/prompt) elapsed \d\d:\d\d eta 00:00$/,
      );
      // One count from 0 to 1,200, not one per process.
      assert.equal(encoding.filter((l) => / 0\/1200 /.test(l)).length, 1, first.stderr);
      assert.ok(existsSync(join(root, 'many', 'annotations.json')));
      // Stored: another run encodes nothing.
      const second = run('many-again');
      assert.equal(second.code, 0, second.stderr);
      assert.doesNotMatch(second.stderr, /encoding prompts/);
    } finally {
      await model.remove();
    }
  });
});
