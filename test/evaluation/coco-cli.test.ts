import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fixture = join(root, '../shared/fixtures/coco-eval');

function ape(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(root, 'src/cli/main.ts'), ...args], {
    cwd: root,
    encoding: 'utf8',
  });
}

test('ape eval coco prints the summary and writes the twelve stats', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ape-eval-'));
  try {
    const out = join(dir, 'stats.json');
    const run = ape(
      'eval',
      'coco',
      '--gt',
      join(fixture, 'instances_val2014_100.json'),
      '--results',
      join(fixture, 'instances_val2014_fakesegm100_results.json'),
      '--type',
      'segm',
      '--json',
      out,
    );
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 12);
    assert.equal(lines[0], ' Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.320');
    const written = JSON.parse(readFileSync(out, 'utf8'));
    const expected = JSON.parse(readFileSync(join(fixture, 'expected.json'), 'utf8'));
    assert.deepEqual(Object.keys(written), ['type', 'stats']);
    assert.equal(written.type, 'segm');
    written.stats.forEach((v: number, i: number) => assert.ok(Math.abs(v - expected.segm[i]) <= 1e-9));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ape eval coco rejects bad files and arguments with a clear message and non-zero exit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ape-eval-'));
  try {
    const gt = join(fixture, 'instances_val2014_100.json');
    const bad = join(dir, 'bad.json');
    writeFileSync(
      bad,
      JSON.stringify([
        { image_id: 42, category_id: 1, score: 0.5, bbox: [0, 0, 1, 1] },
        { image_id: 42, category_id: 999, score: 0.5, bbox: [0, 0, 1, 1] },
      ]),
    );
    const unknownCategory = ape('eval', 'coco', '--gt', gt, '--results', bad, '--type', 'bbox');
    assert.equal(unknownCategory.status, 1);
    assert.match(unknownCategory.stderr, /bad\.json: \[1\]\.category_id: not a category of the ground truth, got 999/);
    assert.equal(unknownCategory.stdout, '');

    const missing = ape('eval', 'coco', '--gt', join(dir, 'nope.json'), '--results', bad, '--type', 'bbox');
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /cannot read ground-truth file .*nope\.json: ENOENT/);

    const badType = ape('eval', 'coco', '--gt', gt, '--results', bad, '--type', 'keypoints');
    assert.equal(badType.status, 2);
    assert.match(badType.stderr, /--type must be bbox or segm, got 'keypoints'/);

    const unknown = ape('eval', 'detections');
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown evaluation 'detections'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
