import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BoundedReadError, readRegularFile, readRegularFileSync } from '../../src/io/bounded-file.js';
import { checkDataset } from '../../src/data/synth/checker.js';
import { formatIssue } from '../../src/data/synth/check-issues.js';
import { renderDatasetPreview } from '../../src/data/synth/preview.js';
import { writeSynthDataset } from '../../src/data/synth/write-dataset.js';
import { readJsonFile } from '../../src/data/readers/json-file.js';

/** A two-image split whose first image is replaced by `replace(path)`. */
async function splitWith(replace: (path: string) => void): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ape-bounded-'));
  await writeSynthDataset(dir, { images: 2, seed: 4, size: 48, config: { minObjects: 1, maxObjects: 2 } });
  const instances = JSON.parse(readFileSync(join(dir, 'instances.json'), 'utf8')) as {
    images: Array<{ id: number; file_name: string }>;
  };
  const first = [...instances.images].sort((a, b) => a.id - b.id)[0]!;
  const path = join(dir, 'images', first.file_name);
  rmSync(path);
  replace(path);
  return dir;
}

const fifo = (path: string) => execFileSync('mkfifo', [path]);
const toDevZero = (path: string) => symlinkSync('/dev/zero', path);

test('the bounded reader refuses FIFOs, devices and folders before reading, and oversized files', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ape-bounded-'));
  fifo(join(dir, 'pipe'));
  toDevZero(join(dir, 'zero'));
  writeFileSync(join(dir, 'ten'), '0123456789');
  for (const read of [readRegularFile, async (p: string, n: number) => readRegularFileSync(p, n)]) {
    await assert.rejects(
      read(join(dir, 'pipe'), 100),
      (e: unknown) =>
        e instanceof BoundedReadError &&
        e.reason === 'not-regular' &&
        /pipe: a FIFO, not a regular file/.test(e.message),
    );
    await assert.rejects(read(join(dir, 'zero'), 100), /zero: a device, not a regular file/);
    await assert.rejects(read(dir, 100), /a folder, not a regular file/);
    await assert.rejects(read(join(dir, 'ten'), 9), /file is 10 bytes, more than the limit of 9/);
    await assert.rejects(read(join(dir, 'none'), 9), /none: cannot read \(ENOENT\)/);
    assert.equal(Buffer.from(await read(join(dir, 'ten'), 10)).toString(), '0123456789');
  }
  fifo(join(dir, 'pipe.json'));
  assert.throws(() => readJsonFile(join(dir, 'pipe.json')), /pipe\.json: a FIFO, not a regular file/);
});

// Before: a FIFO named as an image hung `data check` and `data show` forever, and a link to
// /dev/zero grew memory past 1.8 GB.
for (const [what, replace, message] of [
  ['a FIFO', fifo, /a FIFO, not a regular file/],
  ['a link to /dev/zero', toDevZero, /a device, not a regular file/],
] as const) {
  test(`data check and data show on a split whose image is ${what}: a problem naming the file and the image`, {
    timeout: 60_000,
  }, async () => {
    const dir = await splitWith(replace);
    const report = await checkDataset(dir);
    assert.equal(report.ok, false);
    const lines = report.issues.map(formatIssue).join('\n');
    assert.match(lines, /instances\.json.*image id \d+.*file_name.*images\/\S+\.png: /);
    assert.match(lines, message);
    await assert.rejects(renderDatasetPreview(dir), (error: Error) => {
      assert.match(error.message, /instances\.json, image id \d+: .*images\/\S+\.png: /);
      assert.match(error.message, message);
      return true;
    });
  });
}

test('data show names the file and the annotation of a bad segmentation, and a file that is not JSON', async () => {
  const good = mkdtempSync(join(tmpdir(), 'ape-bounded-'));
  await writeSynthDataset(good, { images: 1, seed: 4, size: 48, config: { minObjects: 1, maxObjects: 1 } });
  const instances = JSON.parse(readFileSync(join(good, 'instances.json'), 'utf8'));
  instances.annotations[0].segmentation = { size: [48, 48], counts: 12 };
  writeFileSync(join(good, 'instances.json'), JSON.stringify(instances));
  await assert.rejects(
    renderDatasetPreview(good),
    new RegExp(`instances\\.json, annotation id ${instances.annotations[0].id} \\(image id \\d+\\): segmentation: `),
  );
  writeFileSync(join(good, 'grounding.json'), '{"annotations": [');
  await assert.rejects(renderDatasetPreview(good), /grounding\.json: not valid JSON/);
});
