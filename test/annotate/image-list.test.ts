import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { listImages } from '../../src/annotate/image-list.js';

describe('listImages', () => {
  it('finds the images of a folder and its sub-folders in sorted order, skipping other and hidden files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ape-list-'));
    mkdirSync(join(dir, 'b'));
    mkdirSync(join(dir, '.cache'));
    for (const name of ['z.JPG', 'a.png', 'notes.txt', '.hidden.png', 'b/c.webp', '.cache/d.png', 'm.jpeg'])
      writeFileSync(join(dir, name), '');
    assert.deepEqual(
      listImages(dir),
      ['a.png', 'b/c.webp', 'm.jpeg', 'z.JPG'].map((n) => join(dir, n)),
    );
  });

  it('reads a list file: paths relative to its folder, comments and blank lines skipped, duplicates refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ape-list-'));
    writeFileSync(join(dir, 'list.txt'), '# my images\nx/one.png\n\n  /abs/two.jpg  \r\n');
    assert.deepEqual(listImages(join(dir, 'list.txt')), [join(dir, 'x/one.png'), '/abs/two.jpg']);
    writeFileSync(join(dir, 'twice.txt'), 'a.png\n./a.png\n');
    assert.throws(() => listImages(join(dir, 'twice.txt')), /a\.png is listed twice/);
    writeFileSync(join(dir, 'empty.txt'), '# nothing\n');
    assert.throws(() => listImages(join(dir, 'empty.txt')), /the list is empty/);
    assert.throws(() => listImages(join(dir, 'missing')), /cannot read .*missing: ENOENT/);
  });
});
