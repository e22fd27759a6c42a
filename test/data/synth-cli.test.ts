import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readImage } from '../../src/io/image-node.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
let root: string;

function ape(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(repo, 'src/cli/main.ts'), ...args], {
    cwd: repo,
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ape-synth-cli-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('ape data synth, check, show; check fails naming file, record and field', async () => {
  const out = join(root, 'split');
  const made = ape('data', 'synth', '--out', out, '--images', '3', '--seed', '2', '--size', '64');
  assert.equal(made.code, 0, made.stderr);
  assert.match(made.stdout, /wrote .*split: 3 images 64x64, \d+ things/);

  const ok = ape('data', 'check', out);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /OK\nimages: 3\nthings: \d+ \(per image min \d+, mean [\d.]+, max \d+\)/);
  assert.match(ok.stdout, /grounding: \d+ sentences on \d+ objects/);

  const sheet = join(root, 'sheet.png');
  const shown = ape('data', 'show', out, '--out', sheet, '--images', '2', '--columns', '1');
  assert.equal(shown.code, 0, shown.stderr);
  const img = await readImage(sheet);
  // One column of two tiles, each two 64-px panels wide plus a 4-px gap, with 6-px padding.
  assert.equal(img.width, 6 + (2 * 64 + 4) + 6);

  const inst = JSON.parse(await readFile(join(out, 'instances.json'), 'utf8'));
  inst.annotations[0].bbox = [0, 0, 1, 1];
  await writeFile(join(out, 'instances.json'), JSON.stringify(inst));
  const bad = ape('data', 'check', out);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /instances.json: annotation id 1: bbox: \[0,0,1,1\] but the mask extent is \[/);
  assert.match(bad.stderr, /1 problem found/);
});

test('usage errors exit 2 with the reason', () => {
  const r = ape('data', 'synth', '--out', join(root, 'x'), '--images', 'three', '--seed', '1');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--images must be an integer, got 'three'/);
  assert.match(ape('data', 'synth', '--images', '2', '--seed', '1').stderr, /--out is required/);
  assert.match(ape('data', 'frobnicate').stderr, /unknown sub-command 'frobnicate'/);
  const unknown = ape('data', 'check', '--bogus', 'x');
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /Unknown option '--bogus'[\s\S]*usage:/);
});
