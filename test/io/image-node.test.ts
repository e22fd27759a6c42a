import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import {
  decodeImage,
  encodeJpeg,
  encodePng,
  encodePngPortable,
  encodeWebp,
  readGrayPng,
  readImage,
  writeImage,
} from '../../src/io/image-node.js';
import { ImageError, type RgbImage } from '../../src/io/image-types.js';

function pattern(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      data[i] = (x * 7 + y * 3) & 255;
      data[i + 1] = (x * y) & 255;
      data[i + 2] = (255 - x * 5) & 255;
    }
  return { width, height, data };
}

/** A PNG assembled chunk by chunk, so tests can state exactly what the file holds. */
function craftPng(
  ihdr: { width: number; height: number; depth: number; colorType: number },
  raw: Uint8Array,
  extra: [string, Uint8Array][] = [],
): Uint8Array {
  const chunk = (type: string, data: Uint8Array) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'latin1');
    Buffer.from(data).copy(out, 8);
    out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const h = Buffer.alloc(13);
  h.writeUInt32BE(ihdr.width, 0);
  h.writeUInt32BE(ihdr.height, 4);
  h[8] = ihdr.depth;
  h[9] = ihdr.colorType;
  return new Uint8Array(
    Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', h),
      ...extra.map(([t, d]) => chunk(t, d)),
      chunk('IDAT', deflateSync(raw)),
      chunk('IEND', new Uint8Array(0)),
    ]),
  );
}

async function rejectsWith(promise: Promise<unknown>, reason: string, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ImageError, `expected ImageError, got ${error}`);
    assert.equal(error.reason, reason, error.message);
    assert.match(error.message, pattern);
    return true;
  });
}

test('PNG round trip is exact (sharp encoder and the portable encoder)', async () => {
  const image = pattern(37, 23);
  for (const bytes of [await encodePng(image), await encodePngPortable(image)]) {
    const back = await decodeImage(bytes);
    assert.equal(back.width, 37);
    assert.equal(back.height, 23);
    assert.deepEqual(back.data, image.data);
  }
});

test('WebP lossless is exact; JPEG and lossy WebP are close', async () => {
  // A smooth image: lossy codecs keep it within a few levels.
  const width = 64;
  const height = 48;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const x = i % width;
    const y = Math.floor(i / width);
    data.set([x * 3, y * 4, 128 + ((x + y) >> 1)], i * 3);
  }
  const image = { width, height, data };
  assert.deepEqual((await decodeImage(await encodeWebp(image, { lossless: true }))).data, data);
  for (const bytes of [await encodeJpeg(image, { quality: 95 }), await encodeWebp(image, { quality: 95 })]) {
    const back = await decodeImage(bytes);
    assert.equal(back.width, width);
    let sum = 0;
    for (let i = 0; i < data.length; i++) sum += Math.abs(back.data[i]! - data[i]!);
    assert.ok(sum / data.length < 3, `mean abs error ${sum / data.length}`);
  }
});

test('greyscale PNG: exact one-channel file; decodeImage expands to RGB', async () => {
  const gray = { width: 9, height: 4, data: Uint8Array.from({ length: 36 }, (_, i) => (i * 37) % 256) };
  const bytes = await encodePng(gray);
  assert.equal(bytes[25], 0, 'colour type 0 (greyscale)');
  assert.equal(bytes[24], 8, 'bit depth 8');
  assert.deepEqual((await readGrayPng(bytes)).data, gray.data);
  const rgb = await decodeImage(bytes);
  for (let i = 0; i < 36; i++)
    assert.deepEqual([...rgb.data.subarray(i * 3, i * 3 + 3)], [gray.data[i], gray.data[i], gray.data[i]]);
  assert.deepEqual((await readGrayPng(await encodePngPortable(gray))).data, gray.data);
});

test('alpha is dropped, not composited (as PIL convert("RGB"))', async () => {
  const rgba = Uint8Array.from([10, 20, 30, 0, 200, 100, 50, 128, 1, 2, 3, 255]);
  const bytes = await sharp(rgba, { raw: { width: 3, height: 1, channels: 4 } })
    .png()
    .toBuffer();
  const back = await decodeImage(bytes);
  assert.deepEqual([...back.data], [10, 20, 30, 200, 100, 50, 1, 2, 3]);
});

test('EXIF orientation is applied', async () => {
  // 16x8: left half red, right half blue; orientation 6 = rotate 90 degrees clockwise to display.
  const width = 16;
  const height = 8;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(i % width < 8 ? [255, 0, 0] : [0, 0, 255], i * 3);
  const jpeg = await sharp(data, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 100 })
    .withMetadata({ orientation: 6 })
    .toBuffer();
  const back = await decodeImage(jpeg);
  assert.equal(back.width, 8);
  assert.equal(back.height, 16);
  const at = (x: number, y: number) => [...back.data.subarray((y * 8 + x) * 3, (y * 8 + x) * 3 + 3)];
  assert.ok(at(4, 2)[0]! > 200 && at(4, 2)[2]! < 50, `top is red: ${at(4, 2)}`);
  assert.ok(at(4, 13)[2]! > 200 && at(4, 13)[0]! < 50, `bottom is blue: ${at(4, 13)}`);
});

test('palette PNG: readGrayPng gives the stored indices (1, 2, 4 and 8 bits)', async () => {
  const width = 5;
  const height = 3;
  const plte = Uint8Array.from({ length: 16 * 3 }, (_, i) => (i * 11) % 256);
  for (const depth of [1, 2, 4, 8]) {
    const values = Array.from({ length: width * height }, (_, i) => (i * 7 + 3) % (1 << depth));
    const rowBytes = Math.ceil((width * depth) / 8);
    const raw = new Uint8Array(height * (rowBytes + 1));
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const bit = x * depth;
        raw[y * (rowBytes + 1) + 1 + (bit >> 3)]! |= values[y * width + x]! << (8 - depth - (bit & 7));
      }
    const png = craftPng({ width, height, depth, colorType: 3 }, raw, [
      ['PLTE', plte.subarray(0, Math.min(3 << depth, 48))],
    ]);
    const gray = await readGrayPng(png);
    assert.deepEqual([...gray.data], values, `depth ${depth}`);
  }
});

test('interlaced and filtered PNGs decode to the same values', async () => {
  const width = 13;
  const height = 11;
  const gray = Uint8Array.from({ length: width * height }, (_, i) => (i * i + 3 * i) % 251);
  const interlaced = await sharp(gray, { raw: { width, height, channels: 1 } })
    .toColourspace('b-w')
    .png({ progressive: true })
    .toBuffer();
  assert.equal(interlaced[28], 1, 'file is Adam7-interlaced');
  assert.deepEqual((await readGrayPng(interlaced)).data, gray);
  // An 8-colour palette image from sharp: indices must map one-to-one onto the decoded colours.
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) rgb.set([(i % 8) * 30, 255 - (i % 8) * 30, 77], i * 3);
  const paletted = await sharp(rgb, { raw: { width, height, channels: 3 } })
    .png({ palette: true, colours: 8, dither: 0 })
    .toBuffer();
  assert.equal(paletted[25], 3, 'colour type 3 (palette)');
  const indices = await readGrayPng(paletted);
  const colours = await decodeImage(paletted);
  const colourOf = new Map<number, string>();
  const indexOf = new Map<string, number>();
  for (let i = 0; i < width * height; i++) {
    const colour = colours.data.subarray(i * 3, i * 3 + 3).join(',');
    assert.equal(colourOf.get(indices.data[i]!) ?? colour, colour);
    assert.equal(indexOf.get(colour) ?? indices.data[i], indices.data[i]);
    colourOf.set(indices.data[i]!, colour);
    indexOf.set(colour, indices.data[i]!);
  }
  assert.ok(colourOf.size >= 2);
  assert.equal(colourOf.size, indexOf.size);
});

test('readGrayPng refuses colour, alpha, 16-bit and non-PNG input, saying what it found', async () => {
  await rejectsWith(readGrayPng(await encodePng(pattern(4, 4))), 'not-single-channel', /8-bit RGB/);
  const g16 = craftPng({ width: 2, height: 1, depth: 16, colorType: 0 }, new Uint8Array(5));
  await rejectsWith(readGrayPng(g16), 'not-single-channel', /16-bit greyscale/);
  const ga = craftPng({ width: 2, height: 1, depth: 8, colorType: 4 }, new Uint8Array(5));
  await rejectsWith(readGrayPng(ga), 'not-single-channel', /greyscale with alpha/);
  await rejectsWith(readGrayPng(await encodeJpeg(pattern(4, 4))), 'not-single-channel', /found JPEG/);
  const short = craftPng({ width: 4, height: 4, depth: 8, colorType: 0 }, new Uint8Array(10));
  await rejectsWith(readGrayPng(short), 'truncated', /holds 10 bytes.*needs 20/);
  const png = await encodePng({ width: 3, height: 3, data: new Uint8Array(9) });
  const flipped = new Uint8Array(png);
  flipped[40]! ^= 0xff; // inside IDAT data: the CRC no longer matches
  await rejectsWith(readGrayPng(flipped), 'corrupt', /CRC/);
});

test('clear errors: empty, unsupported (named), random, truncated, corrupt, zero-sized, oversized', async () => {
  await rejectsWith(decodeImage(new Uint8Array(0)), 'empty', /empty/);
  await rejectsWith(decodeImage(new TextEncoder().encode('GIF89a\x01\x00\x01\x00\x00\x00\x00;')), 'unsupported', /GIF/);
  await rejectsWith(
    decodeImage(Uint8Array.from([0x42, 0x4d, 0x3a, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0])),
    'unsupported',
    /BMP/,
  );
  await rejectsWith(
    decodeImage(new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"/>')),
    'unsupported',
    /markup/,
  );
  const random = Uint8Array.from({ length: 64 }, (_, i) => (i * 97 + 13) % 256);
  await rejectsWith(
    decodeImage(random, { source: 'noise.bin' }),
    'unsupported',
    /^noise\.bin: .*unknown data \(first bytes 0d 6e cf/,
  );

  const png = await encodePng(pattern(40, 30));
  await rejectsWith(decodeImage(png.subarray(0, png.length - 30)), 'truncated', /before its IEND|inside chunk/);
  await rejectsWith(decodeImage(png.subarray(0, 5)), 'truncated', /signature/);
  const jpeg = await encodeJpeg(pattern(40, 30));
  await rejectsWith(decodeImage(jpeg.subarray(0, jpeg.length - 100)), 'truncated', /end-of-image/);
  await rejectsWith(decodeImage(jpeg.subarray(0, 100)), 'truncated', /JPEG ends/);
  const webp = await encodeWebp(pattern(40, 30));
  await rejectsWith(decodeImage(webp.subarray(0, webp.length - 10)), 'truncated', /RIFF header says/);

  const corrupt = new Uint8Array(png);
  const idat = Buffer.from(png).indexOf('IDAT');
  for (let i = idat + 10; i < idat + 40; i++) corrupt[i]! ^= 0x5a; // chunk structure intact, data broken
  await rejectsWith(decodeImage(corrupt), 'corrupt', /could not be decoded/);

  const zero = craftPng({ width: 0, height: 5, depth: 8, colorType: 2 }, new Uint8Array(5));
  await rejectsWith(decodeImage(zero), 'empty', /zero size \(0x5\)/);
  // The header claims 100000x100000: refused from the header, nothing is decoded.
  const bomb = craftPng({ width: 100000, height: 100000, depth: 8, colorType: 0 }, new Uint8Array(10));
  await rejectsWith(
    decodeImage(bomb),
    'too-large',
    /100000x100000 = 10000000000 pixels, more than the limit of 64000000/,
  );
  await rejectsWith(readGrayPng(bomb), 'too-large', /more than the limit/);
  await rejectsWith(decodeImage(png, { maxPixels: 1000 }), 'too-large', /40x30 = 1200 pixels/);
});

test('readImage / writeImage by extension, atomic, with file-size limit', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ape-image-'));
  try {
    const image = pattern(20, 10);
    for (const name of ['a.png', 'b.jpg', 'c.webp']) {
      await writeImage(join(dir, name), image);
      const back = await readImage(join(dir, name));
      assert.equal(back.width, 20);
      assert.equal(back.height, 10);
      if (name.endsWith('.png')) assert.deepEqual(back.data, image.data);
    }
    const label = { width: 3, height: 2, data: Uint8Array.from([0, 1, 2, 255, 7, 7]) };
    await writeImage(join(dir, 'label.png'), label);
    assert.deepEqual((await readGrayPng(join(dir, 'label.png'))).data, label.data);
    await assert.rejects(writeImage(join(dir, 'x.gif'), image), /unknown extension '\.gif'/);
    await writeFile(join(dir, 'big.png'), await readFile(join(dir, 'a.png')));
    await rejectsWith(readImage(join(dir, 'big.png'), { maxBytes: 10 }), 'too-large', /big\.png: file is \d+ bytes/);
    await rejectsWith(readImage(join(dir, 'label.png'), { maxPixels: 5 }), 'too-large', /label\.png: image is 3x2/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
