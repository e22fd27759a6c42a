import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/util/random.js';
import { initEngine } from '../../src/engine/engine.js';
import { assertWasmMatchesCpu, input, tf } from './check.js';

test('maxPool gradient goes to the window maximum when the whole window is negative', async () => {
  await initEngine({ backend: 'wasm' });
  // One 2x2 window of negatives: the maximum (-1) is the last element.
  const x = tf.tensor4d([-4, -3, -2, -1], [1, 2, 2, 1]);
  const dx = tf.grad((t: tf.Tensor) => tf.maxPool(t as tf.Tensor4D, 2, 2, 'valid'))(x);
  assert.deepEqual(Array.from(await dx.data()), [0, 0, 0, 1]);
  // Ties go to the first maximum in row-major window order, padding never wins.
  const y = tf.tensor4d([-5, -2, -2, -7, -9, -9, -9, -9, -9], [1, 3, 3, 1]);
  const dy = tf.grad((t: tf.Tensor) => tf.maxPool(t as tf.Tensor4D, 2, 2, 'same'))(y);
  assert.deepEqual(Array.from(await dy.data()), [0, 1, 1, 0, 0, 0, 1, 0, 1]);
  tf.dispose([x, dx, y, dy]);
});

test('maxPool gradients match cpu (negative inputs, strides, same/valid padding)', async () => {
  const rng = new Rng(21);
  const shapes: { x: number[]; size: number | [number, number]; stride: number; pad: 'same' | 'valid' }[] = [
    { x: [1, 6, 6, 3], size: 2, stride: 2, pad: 'valid' },
    { x: [2, 7, 5, 4], size: 3, stride: 2, pad: 'same' },
    { x: [1, 5, 5, 2], size: [3, 2], stride: 1, pad: 'same' },
  ];
  for (const s of shapes) {
    await assertWasmMatchesCpu(
      `maxPool ${JSON.stringify(s)}`,
      (x) => tf.maxPool(x as tf.Tensor4D, s.size, s.stride, s.pad),
      [input(rng, s.x, -3, -0.5)],
      rng,
    );
  }
});

test('unsortedSegmentSum on wasm: sums rows, drops out-of-range ids, keeps int32', async () => {
  await initEngine({ backend: 'wasm' });
  const x = tf.tensor2d([
    [1, 2],
    [3, 4],
    [5, 6],
    [7, 8],
    [9, 10],
  ]);
  const s = tf.unsortedSegmentSum(x, tf.tensor1d([2, 0, 2, -1, 5], 'int32'), 3);
  assert.deepEqual(await s.array(), [
    [3, 4],
    [0, 0],
    [6, 8],
  ]);
  const xi = tf.tensor1d([1, 2, 3, 4], 'int32');
  const si = tf.unsortedSegmentSum(xi, tf.tensor1d([1, 1, 0, 1], 'int32'), 2);
  assert.equal(si.dtype, 'int32');
  assert.deepEqual(await si.array(), [3, 7]);
  tf.dispose([x, s, xi, si]);
});

test('gather gradients (UnsortedSegmentSum) match cpu, repeated indices and inner axes included', async () => {
  const rng = new Rng(22);
  const idx = [3, 0, 3, 1, 3];
  await assertWasmMatchesCpu(
    'gather axis 0',
    (x) => tf.gather(x!, tf.tensor1d(idx, 'int32'), 0),
    [input(rng, [5, 6])],
    rng,
  );
  await assertWasmMatchesCpu(
    'gather axis 1',
    (x) => tf.gather(x!, tf.tensor1d(idx, 'int32'), 1),
    [input(rng, [2, 4, 3])],
    rng,
  );
  await assertWasmMatchesCpu(
    'gather 2-D indices',
    (x) =>
      tf.gather(
        x!,
        tf.tensor2d(
          [
            [0, 2],
            [2, 2],
          ],
          [2, 2],
          'int32',
        ),
        0,
      ),
    [input(rng, [3, 4])],
    rng,
  );
  await assertWasmMatchesCpu(
    'gather batchDims 1',
    (x) =>
      tf.gather(
        x!,
        tf.tensor2d(
          [
            [0, 2, 2],
            [1, 1, 0],
          ],
          [2, 3],
          'int32',
        ),
        1,
        1,
      ),
    [input(rng, [2, 3, 4])],
    rng,
  );
});

test('gather with batchDims 1 reads each batch its own rows (stock wasm did not)', async () => {
  await initEngine({ backend: 'wasm' });
  const x = tf.reshape(tf.range(0, 24), [2, 3, 4]);
  const y = tf.gather(
    x,
    tf.tensor2d(
      [
        [0, 2, 2],
        [1, 1, 0],
      ],
      [2, 3],
      'int32',
    ),
    1,
    1,
  );
  assert.deepEqual(await y.array(), [
    [
      [0, 1, 2, 3],
      [8, 9, 10, 11],
      [8, 9, 10, 11],
    ],
    [
      [16, 17, 18, 19],
      [16, 17, 18, 19],
      [12, 13, 14, 15],
    ],
  ]);
  assert.throws(() => tf.gather(x, tf.tensor2d([[0], [3]], [2, 1], 'int32'), 1, 1), /index value 3/);
  tf.dispose([x, y]);
});
