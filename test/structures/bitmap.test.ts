import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  maskArea,
  maskIntersectionUnion,
  maskIou,
  maskToBox,
  pasteMask,
  pasteMaskSoft,
  resizeMask,
  thresholdMask,
} from '../../src/structures/bitmap.js';

const rows = (data: ArrayLike<number>, w: number) =>
  Array.from({ length: data.length / w }, (_, y) => Array.from({ length: w }, (_, x) => data[y * w + x]));

test('resizeMask nearest: floor(dst * in / out), type kept', () => {
  const labels = Uint8Array.from([1, 2, 3, 4]);
  const up = resizeMask(labels, 2, 2, 4, 4, 'nearest');
  assert.ok(up instanceof Uint8Array);
  assert.deepEqual(rows(up, 4), [
    [1, 1, 2, 2],
    [1, 1, 2, 2],
    [3, 3, 4, 4],
    [3, 3, 4, 4],
  ]);
  // 5 -> 2: scale 2.5 picks columns 0 and 2; 3 -> 2: scale 1.5 picks 0 and 1.
  assert.deepEqual([...resizeMask(Uint8Array.from([10, 11, 12, 13, 14]), 1, 5, 1, 2, 'nearest')], [10, 12]);
  assert.deepEqual([...resizeMask(Float32Array.from([0.5, 0.25, 0.125]), 3, 1, 2, 1, 'nearest')], [0.5, 0.25]);
  assert.ok(resizeMask(Float32Array.from([1]), 1, 1, 2, 2, 'nearest') instanceof Float32Array);
});

test('resizeMask bilinear: align_corners=False values of F.interpolate', () => {
  assert.deepEqual([...resizeMask(Float32Array.from([0, 1]), 1, 2, 1, 4, 'bilinear')], [0, 0.25, 0.75, 1]);
  assert.deepEqual(rows(resizeMask(Float32Array.from([0, 1, 2, 3]), 2, 2, 4, 4, 'bilinear'), 4), [
    [0, 0.25, 0.75, 1],
    [0.5, 0.75, 1.25, 1.5],
    [1.5, 1.75, 2.25, 2.5],
    [2, 2.25, 2.75, 3],
  ]);
  // Downsampling by 2 averages pairs (sample points fall half-way between source pixels).
  assert.deepEqual([...resizeMask(Float32Array.from([0, 1, 2, 3]), 1, 4, 1, 2, 'bilinear')], [0.5, 2.5]);
  // Binary input comes back as probabilities.
  const soft = resizeMask(Uint8Array.from([0, 1]), 1, 2, 1, 4, 'bilinear');
  assert.ok(soft instanceof Float32Array);
  assert.deepEqual([...soft], [0, 0.25, 0.75, 1]);
  assert.throws(() => resizeMask(new Uint8Array(3), 2, 2, 4, 4, 'nearest'), /mask has 3 values, 2x2 needs 4/);
  assert.throws(() => resizeMask(new Uint8Array(4), 2, 2, 0, 4, 'nearest'), /target size must be positive/);
});

test('pasteMask: bilinear grid sampling of the box-local mask at pixel centres', () => {
  // All-ones 2x2 mask over box [2,2,6,6]: per-axis coverage [0, .25, .75, 1, 1, .75, .25, 0].
  const ones = Float32Array.from([1, 1, 1, 1]);
  const p = [0, 0.25, 0.75, 1, 1, 0.75, 0.25, 0];
  const soft = pasteMaskSoft(ones, 2, 2, [2, 2, 6, 6], 8, 8);
  assert.deepEqual(
    rows(soft, 8),
    p.map((a) => p.map((b) => a * b)),
  );
  const hard = pasteMask(ones, 2, 2, [2, 2, 6, 6], 8, 8);
  assert.deepEqual(maskToBox(hard, 8, 8), [2, 2, 6, 6]);
  assert.equal(maskArea(hard), 16);

  // Only the top-left cell set, box [0,0,4,4]: weight on cell 0 per axis is [.75, .75, .25, 0].
  const corner = Float32Array.from([1, 0, 0, 0]);
  const a = [0.75, 0.75, 0.25, 0];
  assert.deepEqual(
    rows(pasteMaskSoft(corner, 2, 2, [0, 0, 4, 4], 4, 4), 4),
    a.map((u) => a.map((v) => u * v)),
  );
  assert.deepEqual(rows(pasteMask(corner, 2, 2, [0, 0, 4, 4], 4, 4), 4), [
    [1, 1, 0, 0],
    [1, 1, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
  ]);
  // >= threshold: 0.5625 passes 0.5625, fails above it.
  assert.equal(maskArea(pasteMask(corner, 2, 2, [0, 0, 4, 4], 4, 4, 0.5625)), 4);
  assert.equal(maskArea(pasteMask(corner, 2, 2, [0, 0, 4, 4], 4, 4, 0.57)), 0);

  // A box hanging off the top-left corner is clipped by the image.
  const q = [1, 0.75, 0.25, 0];
  assert.deepEqual(
    rows(pasteMaskSoft(ones, 2, 2, [-2, -2, 2, 2], 4, 4), 4),
    q.map((u) => q.map((v) => u * v)),
  );
  // Degenerate boxes paste nothing.
  assert.equal(maskArea(pasteMask(ones, 2, 2, [3, 3, 3, 5], 8, 8)), 0);
});

test('maskToBox, maskArea, IoU, threshold', () => {
  const m = Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(maskToBox(m, 4, 5), [1, 1, 3, 3]);
  assert.deepEqual(maskToBox(new Uint8Array(20), 4, 5), [0, 0, 0, 0]);
  assert.deepEqual(maskToBox(Uint8Array.from([0, 0, 0, 1]), 2, 2), [1, 1, 2, 2]);
  assert.equal(maskArea(m), 3);
  const n = new Uint8Array(20);
  n[7] = 1;
  n[8] = 1;
  assert.deepEqual(maskIntersectionUnion(m, n), { intersection: 1, union: 4 });
  assert.equal(maskIou(m, n), 0.25);
  assert.equal(maskIou(new Uint8Array(4), new Uint8Array(4)), 0);
  assert.deepEqual([...thresholdMask([0.2, 0.5, 0.51, 3])], [0, 0, 1, 1]);
});
