import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferringEvaluator, evaluateReferring, type ReferringSample } from '../../src/evaluation/referring.js';

const close = (actual: number, expected: number) =>
  assert.ok(Math.abs(actual - expected) < 1e-12, `${actual} != ${expected}`);

// Box IoUs: 1, 1/3 (half overlap), exactly 0.5, 0 (no prediction), 0.81 (9x9 inside 10x10).
const samples: ReferringSample[] = [
  { predBox: [0, 0, 10, 10], gtBox: [0, 0, 10, 10], predMask: [1, 1, 0, 0], gtMask: [1, 1, 0, 0] },
  {
    predBox: [0, 0, 10, 10],
    gtBox: [5, 0, 15, 10],
    predMask: Uint8Array.from([1, 0, 0, 0]),
    gtMask: Uint8Array.from([0, 1, 0, 0]),
  },
  { predBox: [0, 0, 10, 10], gtBox: [0, 0, 10, 5] },
  { predBox: null, gtBox: [0, 0, 10, 10], predMask: null, gtMask: [1, 1, 1, 1] },
  { predBox: [0, 0, 10, 10], gtBox: [1, 1, 10, 10] },
];

test('box precision at 0.5:0.9 (strict, as APE) and mean IoU', () => {
  const m = evaluateReferring(samples);
  assert.equal(m.count, 5);
  assert.deepEqual(m.box.precision, { '0.5': 0.4, '0.6': 0.4, '0.7': 0.4, '0.8': 0.4, '0.9': 0.2 });
  close(m.box.meanIoU, (1 + 1 / 3 + 0.5 + 0 + 0.81) / 5);
  const inclusive = evaluateReferring(samples, { inclusive: true, thresholds: [0.5] });
  assert.deepEqual(inclusive.box.precision, { '0.5': 0.6 });
});

test('mask mean IoU, cumulative IoU and precision over samples that have masks', () => {
  const ev = new ReferringEvaluator();
  for (const s of samples) ev.add(s);
  const m = ev.metrics();
  assert.ok(m.mask);
  assert.equal(m.mask.count, 3);
  close(m.mask.meanIoU, (1 + 0 + 0) / 3);
  assert.equal(m.mask.cumulativeIoU, 2 / (2 + 2 + 4)); // intersections 2+0+0 over unions 2+2+4
  close(m.mask.precision['0.5']!, 1 / 3);
  const report = ev.apeReport(m);
  assert.deepEqual(Object.keys(report), ['P@0.5', 'P@0.6', 'P@0.7', 'P@0.8', 'P@0.9', 'oIoU', 'mIoU']);
  close(report['P@0.5']!, 40);
  close(report.oIoU!, 25);
  close(report.mIoU!, 100 / 3);
  assert.equal(evaluateReferring(samples.slice(2, 3)).mask, undefined);
});

test('bad samples are refused with the sample named', () => {
  const ev = new ReferringEvaluator();
  assert.throws(
    () => ev.add({ id: 'ref-7', predBox: [0, 0, 1], gtBox: [0, 0, 1, 1] }),
    /ref-7: predBox must be 4 finite numbers/,
  );
  assert.throws(
    () => ev.add({ id: 3, predBox: null, gtBox: [0, 0, NaN, 1] }),
    /sample 3: gtBox must be 4 finite numbers/,
  );
  assert.throws(
    () => ev.add({ predBox: null, gtBox: [0, 0, 1, 1], predMask: [1], gtMask: [1, 0] }),
    /predMask has 1 pixels, gtMask 2/,
  );
  assert.throws(() => ev.add({ predBox: null, gtBox: [0, 0, 1, 1], predMask: [1] }), /predMask given without gtMask/);
  assert.equal(ev.metrics().count, 0);
  assert.ok(Number.isNaN(ev.metrics().box.precision['0.5']));
});
