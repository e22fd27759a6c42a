import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ZipArchive, ZipFormatError } from '../../src/io/torch/zip-archive.js';
import { zipArchive } from './torch-test-writer.js';

const dir = mkdtempSync(join(tmpdir(), 'ape-zip-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(bytes: Uint8Array): string {
  const p = join(dir, `z${n++}.zip`);
  writeFileSync(p, bytes);
  return p;
}

const enc = new TextEncoder();
const payload = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);

for (const zip64 of [false, true]) {
  test(`reads stored and deflated entries and byte ranges (${zip64 ? 'zip64 records' : 'classic records'})`, async () => {
    const path = file(
      zipArchive(
        [
          { name: 'a/data.pkl', data: enc.encode('hello') },
          { name: 'a/data/0', data: payload },
          { name: 'a/packed', data: payload, deflate: true },
        ],
        { zip64 },
      ),
    );
    const z = await ZipArchive.open(path);
    try {
      assert.deepEqual([...z.entries.keys()], ['a/data.pkl', 'a/data/0', 'a/packed']);
      assert.equal(new TextDecoder().decode(await z.read('a/data.pkl', 100)), 'hello');
      assert.deepEqual(await z.read('a/data/0', 1000), payload);
      assert.equal(z.entry('a/packed').method, 8);
      assert.deepEqual(await z.read('a/packed', 1000), payload);
      const part = new Uint8Array(10);
      await z.readRange('a/data/0', 500, part);
      assert.deepEqual(part, payload.subarray(500, 510));
      await z.readRange('a/packed', 990, part);
      assert.deepEqual(part, payload.subarray(990, 1000));
      // The torch layout: storages begin at 64-byte boundaries.
      const off = (z as unknown as { dataOffset(e: unknown): Promise<number> }).dataOffset(z.entry('a/data/0'));
      assert.equal((await off) % 64, 0);
      await assert.rejects(z.read('a/data/0', 999), /entry 'a\/data\/0' is 1000 bytes, more than the 999 allowed/);
      await assert.rejects(
        z.readRange('a/data/0', 995, part),
        /range \[995, 1005\) is outside entry 'a\/data\/0' \(1000 bytes\)/,
      );
      await assert.rejects(z.read('a/missing', 10), /no entry 'a\/missing'/);
    } finally {
      await z.close();
    }
  });
}

test('the zip64 fields are what is used (the 32-bit fields say 0xFFFFFFFF)', async () => {
  const bytes = zipArchive([{ name: 'x', data: payload }], { zip64: true });
  const z = await ZipArchive.open(file(bytes));
  try {
    assert.equal(z.entry('x').size, 1000);
    assert.equal(z.entry('x').compressedSize, 1000);
  } finally {
    await z.close();
  }
});

test('refuses files that are not zip archives, and truncated archives', async () => {
  await assert.rejects(
    ZipArchive.open(file(enc.encode('not a zip file at all, just some text here'))),
    /not a zip archive \(no end-of-central-directory record/,
  );
  await assert.rejects(ZipArchive.open(file(new Uint8Array(5))), /5 bytes is too small to be a zip archive/);
  const good = zipArchive([
    { name: 'a', data: payload },
    { name: 'b', data: payload },
  ]);
  // Cut anywhere: the end record disappears or points past the end of the file.
  for (const cut of [good.length - 1, good.length - 30, 1100, 600, 40]) {
    await assert.rejects(ZipArchive.open(file(good.subarray(0, cut))), ZipFormatError, `cut at ${cut}`);
  }
});

test('a central directory that points outside the file is refused', async () => {
  const bytes = zipArchive([{ name: 'a', data: payload }]);
  const v = new DataView(bytes.buffer);
  const eocd = bytes.length - 22;
  v.setUint32(eocd + 16, bytes.length + 100, true);
  await assert.rejects(ZipArchive.open(file(bytes)), /central directory \[\d+, \d+\) points outside the file/);
  const bytes64 = zipArchive([{ name: 'a', data: payload }], { zip64: true });
  const v64 = new DataView(bytes64.buffer);
  const rec = bytes64.length - 22 - 20 - 56;
  v64.setBigUint64(rec + 48, 1n << 40n, true);
  await assert.rejects(ZipArchive.open(file(bytes64)), /points outside the file/);
  v64.setBigUint64(bytes64.length - 22 - 20 + 8, 1n << 40n, true);
  await assert.rejects(ZipArchive.open(file(bytes64)), /zip64 end-of-central-directory at \d+ is outside the file/);
});

test('entry sizes larger than the file, and bad checksums, are refused', async () => {
  const lying = zipArchive([{ name: 'a', data: payload, claimedSize: 1 << 30 }]);
  await assert.rejects(
    ZipArchive.open(file(lying)),
    /entry 'a' \(1073741824 bytes at offset 0\) lies outside the archive's data area/,
  );
  const lying64 = zipArchive([{ name: 'a', data: payload, claimedSize: 2 ** 40 }], { zip64: true });
  await assert.rejects(ZipArchive.open(file(lying64)), /entry 'a' \(1099511627776 bytes at offset 0\) lies outside/);
  const z = await ZipArchive.open(file(zipArchive([{ name: 'a', data: payload, crc: 0x12345678 }])));
  try {
    await assert.rejects(
      z.read('a', 1000),
      /entry 'a' is corrupt \(CRC-32 0x[0-9a-f]{8}, the directory says 0x12345678\)/,
    );
    // A partial range cannot be checked, and is returned.
    const part = new Uint8Array(4);
    await z.readRange('a', 0, part);
    assert.deepEqual(part, payload.subarray(0, 4));
  } finally {
    await z.close();
  }
});

test('unsupported compression methods are refused by name', async () => {
  const bytes = zipArchive([{ name: 'a', data: payload, deflate: true }]);
  // Method field of the central record: 12 = bzip2.
  const cd = bytes.length - 22 - (46 + 1);
  new DataView(bytes.buffer).setUint16(cd + 10, 12, true);
  const z = await ZipArchive.open(file(bytes));
  try {
    await assert.rejects(
      z.read('a', 1000),
      /entry 'a' uses compression method 12; only stored \(0\) and deflate \(8\) are supported/,
    );
  } finally {
    await z.close();
  }
});

// The probe's deflate bomb: a few hundred KB that inflate to hundreds of MB. The directory's sizes
// give it away, so it is refused before a byte is inflated (time and memory in `npm run bench --
// parser-bombs`).
test('a deflated entry that would inflate past 100x its packed size is refused before inflating', async () => {
  const zeros = new Uint8Array(64 * 1024 * 1024);
  const z = await ZipArchive.open(file(zipArchive([{ name: 'archive/data/0', data: zeros, deflate: true }])));
  try {
    const entry = z.entry('archive/data/0');
    assert.ok(entry.compressedSize < 100_000, `packed to ${entry.compressedSize} bytes`);
    await assert.rejects(
      z.read('archive/data/0', 1 << 30),
      /would inflate \d+ bytes to 67108864, more than 100 times \(a zip bomb\?\)/,
    );
    await assert.rejects(z.readRange('archive/data/0', 0, new Uint8Array(16)), /more than 100 times/);
  } finally {
    await z.close();
  }
  // Ordinary data well inside the ratio, and small entries whatever their ratio, still inflate.
  const small = await ZipArchive.open(
    file(
      zipArchive([
        { name: 'a', data: payload, deflate: true },
        { name: 'z', data: new Uint8Array(60_000), deflate: true },
      ]),
    ),
  );
  try {
    assert.deepEqual(await small.read('a', 1000), payload);
    assert.equal((await small.read('z', 60_000)).length, 60_000);
  } finally {
    await small.close();
  }
});
