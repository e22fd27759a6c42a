import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf, initEngine } from '../../src/engine/engine.js';
import '../../src/engine/gradients-node.js';
import { subtractMax } from '../../src/modeling/ops.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

test('subtractMax: forward is x - max, by hand', () => {
  const x = tf.tensor2d([[1, 5, 2], [-3, -1, -2]]);
  assert.deepEqual(Array.from(subtractMax(x, -1).dataSync()), [-4, 0, -3, -2, 0, -1]);
  assert.deepEqual(Array.from(subtractMax(x).dataSync()), [-4, 0, -3, -8, -6, -7]);
  tf.dispose(x);
});

test('subtractMax: softmax gradients equal those traced through the max (row and global shifts)', () => {
  const before = tf.memory().numTensors;
  const x = tf.tensor3d(Float32Array.from({ length: 2 * 3 * 5 }, (_, i) => Math.sin(i * 1.7) * 3), [2, 3, 5]);
  const w = tf.tensor3d(Float32Array.from({ length: 2 * 3 * 5 }, (_, i) => Math.cos(i * 0.9)), [2, 3, 5]);
  for (const axis of [-1, undefined]) {
    const loss = (shift: (t: tf.Tensor) => tf.Tensor) => (t: tf.Tensor) => tf.sum(tf.mul(tf.softmax(shift(t)), w));
    const traced = tf.grad(loss((t) => tf.sub(t, axis === undefined ? tf.max(t) : tf.max(t, axis, true))))(x);
    const straight = tf.grad(loss((t) => subtractMax(t, axis)))(x);
    // Not a vacuous comparison: the gradient is far from zero.
    assert.ok(tf.tidy(() => tf.max(tf.abs(straight)).dataSync()[0]!) > 0.05);
    assert.ok(maxAbsDiff(traced.dataSync(), straight.dataSync()) < 1e-6, `axis ${axis}`);
    tf.dispose([traced, straight]);
  }
  tf.dispose([x, w]);
  assert.equal(tf.memory().numTensors, before);
});
