import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine } from '../../src/engine/engine.js';
import { tf } from './check.js';

const dataBuffers = () => (tf.engine().backend as unknown as { numDataIds(): number }).numDataIds();

test('wasm clone and same-dtype cast share the data; each reference is freed with its tensor', async () => {
  await initEngine({ backend: 'wasm' });
  const buffersBefore = dataBuffers();
  const x = tf.tensor2d([1.5, -2.25, 3, 4], [2, 2]);
  const y = tf.clone(x);
  const z = tf.cast(y, 'float32');
  assert.equal(y.dataId, x.dataId);
  assert.equal(z.dataId, x.dataId);
  assert.equal(dataBuffers(), buffersBefore + 1);
  x.dispose();
  y.dispose();
  // The last reference still reads the values.
  assert.deepEqual(Array.from(z.dataSync()), [1.5, -2.25, 3, 4]);
  z.dispose();
  assert.equal(dataBuffers(), buffersBefore);
});

test('wasm cast to another dtype converts; to bool it is x != 0 (the stock kernel wrapped -2.2 to 254 and 0.5 to 0)', async () => {
  await initEngine({ backend: 'wasm' });
  const x = tf.tensor1d([1.7, -2.2, 0, 0.5]);
  const i = tf.cast(x, 'int32');
  const b = tf.cast(x, 'bool');
  assert.notEqual(i.dataId, x.dataId);
  assert.equal(i.dtype, 'int32');
  assert.deepEqual(Array.from(i.dataSync()), [1, -2, 0, 0]);
  assert.deepEqual(Array.from(b.dataSync()), [1, 1, 0, 1]);
  const fromInt = tf.cast(tf.tensor1d([3, 0, -256], 'int32'), 'bool');
  assert.deepEqual(Array.from(fromInt.dataSync()), [1, 0, 1]);
  fromInt.dispose();
  tf.dispose([x, i, b]);
});

test('gradients through saved (shared) tensors stay right after the variable is reassigned', async () => {
  await initEngine({ backend: 'wasm' });
  const tensorsBefore = tf.memory().numTensors;
  const w = tf.tidy(() => tf.variable(tf.zeros([2, 2])));
  const x = tf.tensor2d([0.5, -1, 2, 0.25], [2, 2]);
  // loss = sum((x w) * w): d/dw = x^T w + (x w), all saved inputs are clones of w and x.
  const lossOf = () => tf.sum(tf.mul(tf.matMul(x, w), w)) as tf.Scalar;
  const expected = (wv: number[]) => {
    const [a, b, c, d] = wv as [number, number, number, number];
    const xw = [0.5 * a - 1 * c, 0.5 * b - 1 * d, 2 * a + 0.25 * c, 2 * b + 0.25 * d];
    // (x^T (w))[i][j] = sum_k x[k][i] w[k][j], with upstream gradient w.
    const xtw = [0.5 * a + 2 * c, 0.5 * b + 2 * d, -1 * a + 0.25 * c, -1 * b + 0.25 * d];
    return xw.map((v, k) => v + xtw[k]!);
  };
  for (const wv of [
    [1, 2, 3, 4],
    [-1, 0.5, 2, -3],
  ]) {
    tf.tidy(() => w.assign(tf.tensor2d(wv, [2, 2])));
    const { value, grads } = tf.variableGrads(lossOf, [w]);
    const g = Array.from(grads[w.name]!.dataSync());
    expected(wv).forEach((v, k) => assert.ok(Math.abs(g[k]! - v) < 1e-5, `grad[${k}] ${g[k]} vs ${v}`));
    tf.dispose([value, grads[w.name]!]);
  }
  tf.dispose([w, x]);
  assert.equal(tf.memory().numTensors, tensorsBefore);
});
