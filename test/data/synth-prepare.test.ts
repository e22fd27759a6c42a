import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeMissingSynthFolders } from '../../src/data/synth/prepare.js';
import type { InstancesFile } from '../../src/data/synth/formats.js';

test('writeMissingSynthFolders writes only the missing folders, whole, and leaves no partial copy', async () => {
  const root = await mkdtemp(join(tmpdir(), 'ape-prepare-'));
  try {
    const present = join(root, 'present');
    await mkdir(present);
    const lines: string[] = [];
    const specs = [
      { out: present, images: 3, seed: 1, size: 64 },
      { out: join(root, 'fresh'), images: 2, seed: 5, size: 64 },
    ];
    await writeMissingSynthFolders(specs, (line) => lines.push(line));
    assert.deepEqual(await readdir(present), [], 'an existing folder is left as it is');
    const instances = JSON.parse(await readFile(join(root, 'fresh', 'instances.json'), 'utf8')) as InstancesFile;
    assert.equal(instances.images.length, 2);
    assert.equal(existsSync(join(root, 'fresh.partial')), false);
    assert.deepEqual(lines, [`generating 2 synthetic images (seed 5) into ${join(root, 'fresh')}`]);
    await writeMissingSynthFolders(specs, (line) => lines.push(line));
    assert.equal(lines.length, 1, 'the second call generates nothing');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
