import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batchedNms, nms } from '../../src/structures/nms.js';
import type { Box } from '../../src/structures/boxes.js';

const boxes: Box[] = [
  [0, 0, 10, 10], // 0
  [1, 1, 11, 11], // 1: IoU with 0 = 81/119 = 0.68
  [20, 20, 30, 30], // 2
  [0, 0, 10, 5], // 3: IoU with 0 = 0.5
  [21, 21, 31, 31], // 4: IoU with 2 = 0.68
];
const scores = [0.9, 0.95, 0.5, 0.8, 0.4];

test('nms keeps the best of each overlapping group, in score order', () => {
  // 1 (0.95) suppresses 0 (0.68 > 0.6); 3 overlaps 1 by 45/125 = 0.36; 2 suppresses 4.
  assert.deepEqual(nms(boxes, scores, 0.6), [1, 3, 2]);
  // Strict '>' comparison: IoU exactly 0.5 with box 0 is kept at threshold 0.5.
  assert.deepEqual(nms([boxes[0]!, boxes[3]!], [0.9, 0.8], 0.5), [0, 1]);
  assert.deepEqual(nms([boxes[0]!, boxes[3]!], [0.9, 0.8], 0.49), [0]);
  assert.deepEqual(nms(boxes, scores, 1), [1, 0, 3, 2, 4]);
  assert.deepEqual(nms([], [], 0.5), []);
});

test('nms accepts flat Float32Array boxes; ties keep index order', () => {
  const flat = Float32Array.from(boxes.flat());
  assert.deepEqual(nms(flat, scores, 0.6), [1, 3, 2]);
  assert.deepEqual(nms([boxes[2]!, boxes[2]!], [0.5, 0.5], 0.5), [0]);
  assert.throws(() => nms(flat, [1, 2], 0.5), /5 boxes but 2 scores/);
});

test('batchedNms only suppresses within a class', () => {
  assert.deepEqual(batchedNms(boxes, scores, [0, 1, 0, 0, 0], 0.6), [1, 0, 3, 2]);
  assert.deepEqual(batchedNms(boxes, scores, [0, 0, 0, 0, 0], 0.6), nms(boxes, scores, 0.6));
  assert.deepEqual(batchedNms(boxes, scores, [0, 1, 2, 3, 4], 0.6), [1, 0, 3, 2, 4]);
});
