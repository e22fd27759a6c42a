import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
// tfjs-core's gradient functions are registered by the training side; needed for tf.grad below.
import '../../src/engine/gradients-node.js';
import {
  boxArea,
  boxAt,
  boxCount,
  clipBox,
  convertBox,
  convertBoxAt,
  convertBoxes,
  cxcywhToXyxy,
  denormalizeBox,
  normalizeBox,
  xywhToXyxy,
  xyxyToCxcywh,
  xyxyToXywh,
  type Box,
} from '../../src/structures/boxes.js';
import {
  boxGiou,
  boxIou,
  pairwiseGiou,
  pairwiseIou,
  pairwiseIouFlat,
  pairwiseIouXywh,
} from '../../src/structures/box-iou.js';
import {
  boxCxcywhToXyxyTensor,
  boxXyxyToCxcywhTensor,
  giouTensor,
  pairwiseGiouTensor,
  pairwiseIouTensor,
} from '../../src/structures/box-tensors.js';

const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('format conversions are exact inverses', () => {
  assert.deepEqual(xyxyToXywh([10, 20, 30, 60]), [10, 20, 20, 40]);
  assert.deepEqual(xywhToXyxy([10, 20, 20, 40]), [10, 20, 30, 60]);
  assert.deepEqual(xyxyToCxcywh([10, 20, 30, 60]), [20, 40, 20, 40]);
  assert.deepEqual(cxcywhToXyxy([20, 40, 20, 40]), [10, 20, 30, 60]);
  const formats = ['xyxy', 'xywh', 'cxcywh'] as const;
  const box: Box = [3, 5, 11, 17];
  for (const f of formats)
    for (const g of formats) assert.deepEqual(convertBox(convertBox(box, 'xyxy', f), f, g), convertBox(box, 'xyxy', g));
  const flat = Float32Array.from([10, 20, 30, 60, 0, 0, 4, 2]);
  assert.deepEqual(Array.from(convertBoxes(flat, 'xyxy', 'cxcywh')), [20, 40, 20, 40, 2, 1, 4, 2]);
  assert.ok(convertBoxes(flat, 'xyxy', 'xywh') instanceof Float32Array);
  assert.throws(() => convertBoxes(new Float32Array(3), 'xyxy', 'xywh'), /multiple of 4/);
  const out = new Float64Array(6);
  convertBoxAt([9, 9, 9, 9, 20, 40, 20, 40], 1, 'cxcywh', 'xyxy', out, 2);
  assert.deepEqual(Array.from(out), [0, 0, 10, 20, 30, 60]);
});

test('normalise, area, clip', () => {
  assert.deepEqual(normalizeBox([32, 24, 64, 48], 64, 48), [0.5, 0.5, 1, 1]);
  assert.deepEqual(denormalizeBox([0.5, 0.5, 1, 1], 64, 48), [32, 24, 64, 48]);
  assert.equal(boxArea([1, 2, 4, 6]), 12);
  assert.equal(boxArea([4, 2, 1, 6]), 0);
  assert.deepEqual(clipBox([-5, 3, 120, 90], 100, 80), [0, 3, 100, 80]);
});

test('boxAt reads a box of a list or a flat array and names an index out of range', () => {
  const list: Box[] = [
    [0, 1, 2, 3],
    [4, 5, 6, 7],
  ];
  const flat = Float32Array.from(list.flat());
  assert.deepEqual(boxAt(list, 1), [4, 5, 6, 7]);
  assert.deepEqual(boxAt(flat, 1), [4, 5, 6, 7]);
  assert.equal(boxCount(flat), 2);
  assert.throws(() => boxAt(list, 2), { message: 'boxAt: no box 2 among 2' });
  assert.throws(() => boxAt(flat, -1), { message: 'boxAt: no box -1 among 2' });
  assert.throws(() => boxAt(flat.subarray(0, 6), 0), /flat length 6 is not a multiple of 4/);
});

test('IoU and GIoU on hand-computed pairs', () => {
  const a: Box = [0, 0, 2, 2];
  const b: Box = [1, 1, 3, 3];
  close(boxIou(a, b), 1 / 7);
  // enclosing 3x3 = 9, union 7
  close(boxGiou(a, b), 1 / 7 - 2 / 9);
  const far: Box = [4, 0, 6, 2];
  assert.equal(boxIou(a, far), 0);
  close(boxGiou(a, far), 0 - (12 - 8) / 12);
  assert.equal(boxGiou(a, a), 1);
  const iou = pairwiseIou([a, far], [b, a]);
  assert.equal(iou.length, 2);
  close(iou[0]![0]!, 1 / 7);
  assert.equal(iou[0]![1], 1);
  assert.equal(iou[1]![0], 0);
  const flat = pairwiseIouFlat([...a, ...far], [...b, ...a]);
  assert.deepEqual(Array.from(flat), iou.flat());
  close(pairwiseGiou([a], [far])[0]![0]!, -1 / 3);
});

test('COCO xywh IoU treats crowd ground truth as intersection over detection area', () => {
  const dt: Box[] = [[0, 0, 2, 2]];
  const gt: Box[] = [
    [1, 1, 2, 2],
    [1, 1, 2, 2],
  ];
  assert.deepEqual(pairwiseIouXywh(dt, gt, [false, true]), [[1 / 7, 1 / 4]]);
  assert.deepEqual(pairwiseIouXywh(dt, [[2, 0, 1, 1]]), [[0]]);
});

test('tensor forms agree with the plain ones and are differentiable', async () => {
  await initEngine({ backend: 'cpu' });
  // No coordinate ties between paired boxes: min/max have kinks there that finite differences straddle.
  const aList: Box[] = [
    [0, 0, 2, 2],
    [1.2, 1.1, 5.3, 4.4],
    [2.1, 2.2, 3.3, 7.1],
  ];
  const bList: Box[] = [
    [1, 1, 3, 3],
    [0, 0, 4, 4],
  ];
  const a = tf.tensor2d(aList);
  const b = tf.tensor2d(bList);
  const pg = (await pairwiseGiouTensor(a, b).array()) as number[][];
  const pi = (await pairwiseIouTensor(a, b).array()) as number[][];
  const ref = pairwiseGiou(aList, bList);
  const refIou = pairwiseIou(aList, bList);
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 2; j++) {
      close(pg[i]![j]!, ref[i]![j]!, 1e-5);
      close(pi[i]![j]!, refIou[i]![j]!, 1e-5);
    }
  const pairs = tf.tensor2d([bList[0]!, bList[1]!, bList[0]!]);
  const g = await giouTensor(a, pairs).array();
  g.forEach((v, i) => close(v, boxGiou(aList[i]!, [bList[0], bList[1], bList[0]][i]!), 1e-5));

  const cxcywh = tf.tensor2d([[20, 40, 20, 40]]);
  assert.deepEqual(await boxCxcywhToXyxyTensor(cxcywh).array(), [[10, 20, 30, 60]]);
  assert.deepEqual(await boxXyxyToCxcywhTensor(boxCxcywhToXyxyTensor(cxcywh)).array(), [[20, 40, 20, 40]]);

  // d(sum GIoU)/d(a) against central finite differences of the plain function.
  const grad = (await tf
    .grad((x: tf.Tensor) => tf.sum(giouTensor(x, pairs)))(a)
    .array()) as number[][];
  const others = [bList[0], bList[1], bList[0]];
  const h = 1e-3;
  for (let i = 0; i < 3; i++) {
    for (let c = 0; c < 4; c++) {
      const up = [...aList[i]!] as Box;
      const down = [...aList[i]!] as Box;
      up[c]! += h;
      down[c]! -= h;
      close(grad[i]![c]!, (boxGiou(up, others[i]!) - boxGiou(down, others[i]!)) / (2 * h), 2e-3);
    }
  }
  tf.dispose([a, b, pairs, cxcywh]);
  assert.throws(() => giouTensor(tf.zeros([2, 4]), tf.zeros([3, 4])), /\[N, 4\]/);
});
