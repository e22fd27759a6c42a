// The browser module runs here too, as far as Node provides the web APIs it uses (Blob,
// Compression Streams); decoding through createImageBitmap needs a real browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { decodeImage, encodePng, readGrayPng } from '../../src/io/image-browser.js';
import { decodeImage as decodeWithSharp, encodePng as encodeWithSharp } from '../../src/io/image-node.js';
import { ImageError, blobBytes } from '../../src/io/image-types.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('browser module and its local imports use no Node APIs', () => {
  const seen = new Set<string>();
  const visit = (path: string) => {
    if (seen.has(path)) return;
    seen.add(path);
    const text = readFileSync(path, 'utf8');
    assert.doesNotMatch(text, /from ['"](node:|fs|path|zlib|sharp)/, `${path} imports a Node module`);
    assert.doesNotMatch(text, /\b(process|Buffer|require)\b[.(]/, `${path} uses a Node global`);
    for (const [, spec] of text.matchAll(/from '(\.[^']+)\.js'/g)) visit(join(dirname(path), `${spec}.ts`));
  };
  visit(join(root, 'src/io/image-browser.ts'));
  assert.ok(seen.size >= 4, [...seen].join(', '));
});

test('encodePng (CompressionStream) is pixel-exact and readable by libvips', async () => {
  const gray = { width: 7, height: 5, data: Uint8Array.from({ length: 35 }, (_, i) => (i * 29) % 256) };
  const grayPng = await encodePng(gray);
  assert.equal(grayPng[25], 0, 'greyscale colour type');
  assert.deepEqual((await readGrayPng(grayPng)).data, gray.data);
  assert.deepEqual((await readGrayPng(new Blob([blobBytes(grayPng)]))).data, gray.data);
  assert.deepEqual((await readGrayPng(grayPng.slice().buffer)).data, gray.data);

  const rgb = { width: 6, height: 4, data: Uint8Array.from({ length: 72 }, (_, i) => (i * 53 + 7) % 256) };
  const rgbPng = await encodePng(rgb);
  assert.equal(rgbPng[25], 2, 'RGB colour type');
  assert.deepEqual((await decodeWithSharp(rgbPng)).data, rgb.data);
});

test('readGrayPng reads what sharp writes, and refuses RGB', async () => {
  const gray = {
    width: 300,
    height: 2,
    data: Uint8Array.from({ length: 600 }, (_, i) => (i % 3 === 0 ? 255 : i % 19)),
  };
  assert.deepEqual((await readGrayPng(await encodeWithSharp(gray))).data, gray.data);
  const rgb = { width: 2, height: 2, data: new Uint8Array(12) };
  await assert.rejects(
    readGrayPng(await encodeWithSharp(rgb), { source: 'seg.png' }),
    /seg\.png: PNG is 8-bit RGB; label maps must be/,
  );
});

test('decodeImage checks bytes before decoding: same errors as on Node', async () => {
  const reasons: string[] = [];
  const bomb = await encodeWithSharp({ width: 10, height: 10, data: new Uint8Array(100) });
  for (const input of [
    new Uint8Array(0),
    new TextEncoder().encode('GIF87a....'),
    bomb.subarray(0, 40),
    new Blob([blobBytes(bomb)]),
  ]) {
    try {
      await decodeImage(input, { maxPixels: 50 });
    } catch (error) {
      assert.ok(error instanceof ImageError, String(error));
      reasons.push(error.reason);
    }
  }
  assert.deepEqual(reasons, ['empty', 'unsupported', 'truncated', 'too-large']);
  await assert.rejects(
    decodeImage(new Blob([blobBytes(bomb)]), { maxBytes: 10 }),
    /input is \d+ bytes, more than the limit of 10/,
  );
});
