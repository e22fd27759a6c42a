import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SemanticEvaluator } from '../../src/evaluation/semantic.js';

const close = (actual: number, expected: number) =>
  assert.ok(Math.abs(actual - expected) < 1e-12, `${actual} != ${expected}`);

test('hand-computed metrics over two images with ignored pixels', () => {
  const ev = new SemanticEvaluator({ numClasses: 3, classNames: ['sky', 'road', 'car'] });
  ev.add(Uint8Array.from([0, 1, 1, 1, 2, 0]), Uint8Array.from([0, 0, 1, 1, 255, 2]));
  ev.add(Int32Array.from([0, 0, 2, 1]), Int32Array.from([0, 0, 0, 1]));
  // confusion (pred, gt): (0,0)=3 (1,0)=1 (2,0)=1 (1,1)=3 (0,2)=1; the ignored pixel lands in column 3.
  assert.deepEqual([...ev.confusion], [3, 0, 1, 0, 1, 3, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0]);
  const m = ev.metrics();
  assert.equal(m.pixels, 9);
  assert.deepEqual(m.perClassIoU, [3 / 6, 3 / 4, 0]);
  assert.deepEqual(m.perClassAccuracy, [3 / 5, 1, 0]);
  close(m.mIoU, (0.5 + 0.75 + 0) / 3);
  close(m.meanClassAccuracy, (0.6 + 1 + 0) / 3);
  close(m.pixelAccuracy, 6 / 9);
  close(m.fwIoU, 0.5 * (5 / 9) + 0.75 * (3 / 9));
  const report = ev.detectron2Report(m);
  assert.deepEqual(Object.keys(report), [
    'mIoU',
    'fwIoU',
    'IoU-sky',
    'IoU-road',
    'IoU-car',
    'mACC',
    'pACC',
    'ACC-sky',
    'ACC-road',
    'ACC-car',
  ]);
  close(report.mIoU!, 125 / 3);
  close(report['IoU-road']!, 75);
  close(report.pACC!, 600 / 9);
});

test('classes absent from the ground truth are NaN and left out of the means', () => {
  const ev = new SemanticEvaluator({ numClasses: 4 });
  ev.add([3, 0], [0, 0]);
  const m = ev.metrics();
  assert.equal(m.perClassIoU[0], 0.5); // tp 1, gt 2, pred 1
  assert.ok(Number.isNaN(m.perClassIoU[1]) && Number.isNaN(m.perClassIoU[2]) && Number.isNaN(m.perClassIoU[3]));
  assert.equal(m.mIoU, 0.5);
  assert.equal(m.meanClassAccuracy, 0.5);
  assert.equal(m.pixelAccuracy, 0.5);
  assert.equal(m.fwIoU, 0.5);
  assert.ok(Number.isNaN(ev.detectron2Report()['IoU-3']));
});

test('merge, reset, custom ignore label, and input errors', () => {
  const a = new SemanticEvaluator({ numClasses: 2, ignoreLabel: 9 });
  const b = new SemanticEvaluator({ numClasses: 2, ignoreLabel: 9 });
  a.add([0, 1], [0, 9]);
  b.add([1, 1], [1, 0]);
  a.merge(b);
  const m = a.metrics();
  assert.equal(m.pixels, 3);
  assert.deepEqual(m.perClassIoU, [1 / 2, 1 / 2]); // class 0: tp 1, gt 2, pred 1; class 1: tp 1, gt 1, pred 2
  a.reset();
  assert.ok(Number.isNaN(a.metrics().mIoU));
  assert.throws(() => a.add([0, 2], [0, 0], 'x.png'), /x\.png: predicted class 2 at pixel 1 is outside \[0, 2\)/);
  assert.throws(
    () => a.add([0, 1], [0, 255]),
    /ground-truth value 255 at pixel 1 is neither a class in \[0, 2\) nor the ignore label 9/,
  );
  assert.throws(() => a.add([0], [0, 0]), /prediction has 1 pixels, ground truth 2/);
  assert.equal(a.metrics().pixels, 0, 'rejected images leave the counts untouched');
  assert.throws(() => new SemanticEvaluator({ numClasses: 2, classNames: ['a'] }), /1 class names for 2 classes/);
});
