import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fillHoles, labelComponents, splitComponents } from '../../src/structures/components.js';

const grid = (text: string) => {
  const lines = text
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number));
  return { mask: Uint8Array.from(lines.flat()), h: lines.length, w: lines[0]!.length };
};
const rows = (data: ArrayLike<number>, w: number) =>
  Array.from({ length: data.length / w }, (_, y) => Array.from({ length: w }, (_, x) => data[y * w + x]));

const sample = grid(`
  1 1 0 0 0 1
  1 0 0 0 1 0
  0 0 1 0 0 0
  0 0 1 1 0 0
  1 0 0 0 0 1
`);

test('labelComponents: 8-connected, raster order, areas', () => {
  const { labels, count, areas } = labelComponents(sample.mask, sample.h, sample.w);
  assert.equal(count, 5);
  assert.deepEqual(areas, [3, 2, 3, 1, 1]);
  assert.deepEqual(rows(labels, 6), [
    [1, 1, 0, 0, 0, 2],
    [1, 0, 0, 0, 2, 0],
    [0, 0, 3, 0, 0, 0],
    [0, 0, 3, 3, 0, 0],
    [4, 0, 0, 0, 0, 5],
  ]);
});

test('labelComponents: 4-connected splits diagonal neighbours', () => {
  const { labels, count, areas } = labelComponents(sample.mask, sample.h, sample.w, 4);
  assert.equal(count, 6);
  assert.deepEqual(areas, [3, 1, 1, 3, 1, 1]);
  assert.deepEqual(rows(labels, 6)[1], [1, 0, 0, 0, 3, 0]);
  assert.throws(() => labelComponents(sample.mask, 5, 5), /mask has 30 values, 5x5 needs 25/);
});

test('fillHoles fills enclosed background only', () => {
  const ring = grid(`
    0 0 0 0 0 0
    0 1 1 1 0 0
    0 1 0 1 0 1
    0 1 1 1 0 0
    0 0 0 0 0 0
  `);
  assert.deepEqual(rows(fillHoles(ring.mask, ring.h, ring.w), 6), [
    [0, 0, 0, 0, 0, 0],
    [0, 1, 1, 1, 0, 0],
    [0, 1, 1, 1, 0, 1],
    [0, 1, 1, 1, 0, 0],
    [0, 0, 0, 0, 0, 0],
  ]);
  // A hole touching the outside only diagonally is still a hole (background is 4-connected).
  const notch = grid(`
    1 1 1 0
    1 0 1 0
    1 1 0 0
    0 0 0 0
  `);
  assert.deepEqual(rows(fillHoles(notch.mask, notch.h, notch.w), 4), [
    [1, 1, 1, 0],
    [1, 1, 1, 0],
    [1, 1, 0, 0],
    [0, 0, 0, 0],
  ]);
  // Background open to the border (a U shape) stays.
  const cup = grid(`
    1 0 1
    1 0 1
    1 1 1
  `);
  assert.deepEqual([...fillHoles(cup.mask, 3, 3)], [...cup.mask]);
  assert.deepEqual([...fillHoles(new Uint8Array(0), 0, 0)], []);
});

test('splitComponents: one mask per component, minArea, optional hole filling', () => {
  const parts = splitComponents(sample.mask, sample.h, sample.w, { minArea: 2 });
  assert.equal(parts.length, 3);
  assert.deepEqual(
    parts.map((p) => p.reduce((a, b) => a + b, 0)),
    [3, 2, 3],
  );
  assert.deepEqual(rows(parts[2]!, 6).slice(2, 4), [
    [0, 0, 1, 0, 0, 0],
    [0, 0, 1, 1, 0, 0],
  ]);
  const ringAndDot = grid(`
    1 1 1 0 0
    1 0 1 0 1
    1 1 1 0 0
  `);
  const filled = splitComponents(ringAndDot.mask, 3, 5, { fillHoles: true });
  assert.equal(filled.length, 2);
  assert.deepEqual(rows(filled[0]!, 5), [
    [1, 1, 1, 0, 0],
    [1, 1, 1, 0, 0],
    [1, 1, 1, 0, 0],
  ]);
  assert.deepEqual([...filled[1]!], [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
});
