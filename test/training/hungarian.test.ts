import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linearSumAssignment } from '../../src/training/assign/hungarian.js';
import { hungarianMatch } from '../../src/training/assign/hungarian-matcher.js';
import { matchCostMatrix } from '../../src/training/assign/match-cost.js';
import { Rng } from '../../src/util/random.js';

/** Minimum over all injective maps of the shorter side into the longer, by enumeration. */
function bruteForce(cost: number[], rows: number, cols: number): number {
  let best = Infinity;
  const useRows = rows <= cols;
  const n = useRows ? rows : cols;
  const m = useRows ? cols : rows;
  const used = new Array<boolean>(m).fill(false);
  const walk = (i: number, acc: number): void => {
    if (i === n) {
      best = Math.min(best, acc);
      return;
    }
    for (let j = 0; j < m; j++) {
      if (used[j]) continue;
      used[j] = true;
      walk(i + 1, acc + (useRows ? cost[i * cols + j]! : cost[j * cols + i]!));
      used[j] = false;
    }
  };
  walk(0, 0);
  return best;
}

test('linearSumAssignment equals brute force on random square and rectangular matrices', () => {
  const rng = new Rng(7);
  for (let trial = 0; trial < 300; trial++) {
    const rows = rng.int(1, 6);
    const cols = rng.int(1, 6);
    // Integer costs make ties common, which is where buggy implementations slip.
    const cost = Array.from({ length: rows * cols }, () => (trial % 2 ? rng.int(0, 4) : rng.uniform(-3, 3)));
    const a = linearSumAssignment(cost, rows, cols);
    assert.equal(a.rows.length, Math.min(rows, cols));
    assert.equal(new Set(a.rows).size, a.rows.length);
    assert.equal(new Set(a.cols).size, a.cols.length);
    const sum = a.rows.reduce((s, r, i) => s + cost[r * cols + a.cols[i]!]!, 0);
    assert.ok(Math.abs(sum - a.cost) < 1e-9);
    assert.ok(Math.abs(sum - bruteForce(cost, rows, cols)) < 1e-9, `trial ${trial}: ${sum} vs brute force`);
  }
});

test('linearSumAssignment on a known 3x3 (scipy docs example)', () => {
  const a = linearSumAssignment([4, 1, 3, 2, 0, 5, 3, 2, 2], 3, 3);
  assert.deepEqual(a.rows, [0, 1, 2]);
  assert.deepEqual(a.cols, [1, 0, 2]);
  assert.equal(a.cost, 5);
});

test('linearSumAssignment refuses NaN and wrong sizes, accepts empty', () => {
  assert.throws(() => linearSumAssignment([1, NaN], 1, 2), /cost\[0, 1\] is NaN/);
  assert.throws(() => linearSumAssignment([1, 2, 3], 2, 2), /3 costs for a 2x2/);
  assert.deepEqual(linearSumAssignment([], 0, 5), { rows: [], cols: [], cost: 0 });
});

test('matchCostMatrix: focal class cost, L1 and GIoU by hand', () => {
  // One query (logit 0 -> p = 0.5), one target box equal to the prediction.
  const cost = matchCostMatrix(
    { logits: [0], numPrompts: 1, boxes: [0.5, 0.5, 0.2, 0.2], numQueries: 1 },
    { labels: [0], boxes: [0.5, 0.5, 0.2, 0.2] },
    { cls: 2, l1: 5, giou: 2 },
  );
  // pos = 0.25 * 0.25 * ln 2, neg = 0.75 * 0.25 * ln 2 -> class = 2 * (-0.125 ln 2); GIoU 1 -> -2.
  const expected = 2 * (0.25 * 0.25 - 0.75 * 0.25) * Math.log(2) - 2;
  assert.ok(Math.abs(cost[0]! - expected) < 1e-6, `${cost[0]} vs ${expected}`);
  // Shifted by 0.2: L1 0.2; the boxes touch: IoU 0, enclosing 0.4x0.2 = union 0.08 -> GIoU 0.
  const shifted = matchCostMatrix(
    { boxes: [0.7, 0.5, 0.2, 0.2], numQueries: 1, numPrompts: 0 },
    { labels: [0], boxes: [0.5, 0.5, 0.2, 0.2] },
    { cls: 0, l1: 5, giou: 2 },
  );
  assert.ok(Math.abs(shifted[0]! - (5 * 0.2 + 2 * 0)) < 1e-6, `${shifted[0]}`);
});

test('hungarianMatch gives every target its own best query', () => {
  const boxes = [0.2, 0.2, 0.1, 0.1, 0.8, 0.8, 0.2, 0.2, 0.5, 0.5, 0.3, 0.3];
  const m = hungarianMatch(
    { logits: [5, -5, -5, 5, 0, 0], numPrompts: 2, boxes, numQueries: 3 },
    { labels: [1, 0], boxes: [0.8, 0.8, 0.2, 0.2, 0.2, 0.2, 0.1, 0.1] },
    { cls: 2, l1: 5, giou: 2 },
  );
  assert.deepEqual(m, { queries: [1, 0], targets: [0, 1] });
});
