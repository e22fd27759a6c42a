import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compressRle, decompressRle } from '../../src/structures/rle-string.js';
import { decodeRle, encodeRle, rleArea, rleToBbox, MAX_DECODED_PIXELS, type Rle } from '../../src/structures/rle.js';
import { rleMerge } from '../../src/structures/rle-merge.js';
import { rleIou } from '../../src/structures/rle-iou.js';
import { toRle } from '../../src/structures/segmentation.js';

// Expected strings, areas and boxes below come from pycocotools 2.0.11 (mask.encode/area/toBbox/merge/iou).

function maskFromRows(rows: number[][]): { mask: Uint8Array; h: number; w: number } {
  return { mask: Uint8Array.from(rows.flat()), h: rows.length, w: rows[0]!.length };
}

function rect(h: number, w: number, y0: number, y1: number, x0: number, x1: number, into?: Uint8Array): Uint8Array {
  const m = into ?? new Uint8Array(h * w);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * w + x] = 1;
  return m;
}

test('encodeRle runs down columns, starting with zeros (hand-checked 3x3)', () => {
  const { mask, h, w } = maskFromRows([
    [0, 1, 0],
    [0, 1, 1],
    [0, 0, 0],
  ]);
  const rle = encodeRle(mask, h, w);
  // Column-major: 0 0 0 | 1 1 0 | 0 1 0
  assert.deepEqual(rle, { size: [3, 3], counts: [3, 2, 2, 1, 1] });
  assert.equal(rleArea(rle), 3);
  assert.deepEqual(rleToBbox(rle), [1, 0, 2, 2]);
  assert.deepEqual(compressRle(rle), { size: [3, 3], counts: '322OO' });
  assert.deepEqual(decodeRle(rle), mask);
});

test('a mask starting with foreground gets an empty first run; empty and full masks', () => {
  assert.deepEqual(encodeRle(Uint8Array.from([1, 0, 1, 0]), 2, 2).counts, [0, 2, 2]);
  assert.deepEqual(encodeRle(new Uint8Array(6), 2, 3).counts, [6]);
  assert.deepEqual(encodeRle(new Uint8Array(6).fill(255), 2, 3).counts, [0, 6]);
  assert.deepEqual(rleToBbox({ size: [2, 3], counts: [6] }), [0, 0, 0, 0]);
  assert.deepEqual(rleToBbox({ size: [2, 3], counts: [0, 6] }), [0, 0, 3, 2]);
});

test('compressed strings match pycocotools for a larger mask (multi-character and negative deltas)', () => {
  const h = 100;
  const w = 120;
  const mask = rect(h, w, 70, 95, 5, 15, rect(h, w, 10, 60, 20, 90));
  const rle = encodeRle(mask, h, w);
  const expected =
    'ja0i0[200000000000000000h=i0_A00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000^m2';
  assert.equal(compressRle(rle).counts, expected);
  assert.deepEqual(decompressRle({ size: [h, w], counts: expected }), rle);
  assert.equal(rleArea(rle), 3750);
  assert.deepEqual(rleToBbox(rle), [5, 10, 85, 85]);
  assert.deepEqual(decodeRle(rle), mask);
});

test('L-shaped mask: string and box as pycocotools', () => {
  const mask = Uint8Array.from([
    0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1,
    1, 1, 0,
  ]);
  const rle = encodeRle(mask, 6, 7);
  assert.equal(compressRle(rle).counts, '754M0000002');
  assert.deepEqual(rleToBbox(rle), [1, 1, 5, 5]);
});

test('compress/decompress round-trips arbitrary runs, including large counts', () => {
  const counts = [0, 1, 31, 32, 33, 1023, 1024, 5, 1_000_000, 3, 70_000_000];
  counts.push(10_000 * 10_000 - counts.reduce((a, b) => a + b, 0));
  const rle: Rle = { size: [10_000, 10_000], counts };
  assert.deepEqual(decompressRle(compressRle(rle)), rle);
});

test('merge and IoU (crowd divides by the detection area)', () => {
  const a = encodeRle(rect(8, 8, 0, 4, 0, 4), 8, 8);
  const b = encodeRle(rect(8, 8, 2, 8, 2, 8), 8, 8);
  assert.equal(rleArea(rleMerge([a, b])), 48);
  assert.equal(rleArea(rleMerge([a, b], true)), 4);
  assert.deepEqual(rleIou([a], [b], [false]), [[4 / 48]]);
  assert.deepEqual(rleIou([a], [b], [true]), [[4 / 16]]);
  // merged runs are those of the decoded union
  const union = decodeRle(a).map((v, i) => v | decodeRle(b)[i]!);
  assert.deepEqual(rleMerge([a, b]), encodeRle(union, 8, 8));
  // disjoint masks, and masks of different sizes (-1 as in the reference)
  const c = encodeRle(rect(8, 8, 5, 8, 5, 8), 8, 8);
  assert.deepEqual(rleIou([a], [c], [false]), [[0]]);
  const d = encodeRle(rect(8, 9, 0, 4, 0, 4), 8, 9);
  assert.deepEqual(rleIou([a], [d], [false]), [[-1]]);
  assert.throws(() => rleMerge([a, d]), /size/);
});

test('toRle accepts uncompressed and compressed RLE of the image size', () => {
  const rle = { size: [3, 3] as [number, number], counts: [3, 2, 2, 1, 1] };
  assert.deepEqual(toRle(rle, 3, 3), rle);
  assert.deepEqual(toRle({ size: [3, 3], counts: '322OO' }, 3, 3), rle);
  assert.throws(() => toRle(rle, 4, 3), /size/);
  assert.throws(() => toRle({ size: [3, 3], counts: [3, 2, 2] }, 3, 3), /cover 7 pixels/);
});

test('malformed input gives clear errors and allocation is bounded', () => {
  assert.throws(() => decompressRle({ size: [3, 3], counts: '32 2' }), /invalid character/);
  assert.throws(() => decompressRle({ size: [3, 3], counts: '3i' }), /ends inside a number/);
  assert.throws(() => decompressRle({ size: [3, 3], counts: '3O' }), /not a valid run length/);
  assert.throws(() => encodeRle(new Uint8Array(5), 2, 3), /expected 2\*3=6/);
  assert.throws(() => decodeRle({ size: [3, 3], counts: [3, 2] }), /cover 5 pixels/);
  assert.throws(() => decodeRle({ size: [3, 3], counts: [3, -1, 7] }), /non-negative integer/);
  const side = 30_000;
  assert.ok(side * side > MAX_DECODED_PIXELS);
  assert.throws(() => decodeRle({ size: [side, side], counts: [side * side] }), /exceeds/);
  assert.throws(() => decodeRle({ size: [1e6, 1], counts: [1e6] }), /size/);
});

test('rleIou and rleMerge refuse runs that cover different totals instead of looping', () => {
  const a: Rle = { size: [2, 2], counts: [1, 3] };
  const lying: Rle = { size: [2, 2], counts: [1, 1] };
  assert.throws(() => rleIou([a], [lying], [false]), /cover 4 and 2 pixels/);
  assert.throws(() => rleMerge([a, lying]), /cover 4 and 2 pixels/);
});
