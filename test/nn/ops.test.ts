import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf, initEngine } from '../../src/engine/engine.js';
import '../../src/engine/gradients-node.js';
import { subtractMax } from '../../src/nn/ops.js';
import { layerNorm } from '../../src/nn/layer-norm.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

test('subtractMax: forward is x - max, by hand', () => {
  const x = tf.tensor2d([
    [1, 5, 2],
    [-3, -1, -2],
  ]);
  assert.deepEqual(Array.from(subtractMax(x, -1).dataSync()), [-4, 0, -3, -2, 0, -1]);
  assert.deepEqual(Array.from(subtractMax(x).dataSync()), [-4, 0, -3, -8, -6, -7]);
  tf.dispose(x);
});

test('subtractMax: softmax gradients equal those traced through the max (row and global shifts)', () => {
  const before = tf.memory().numTensors;
  const x = tf.tensor3d(
    Float32Array.from({ length: 2 * 3 * 5 }, (_, i) => Math.sin(i * 1.7) * 3),
    [2, 3, 5],
  );
  const w = tf.tensor3d(
    Float32Array.from({ length: 2 * 3 * 5 }, (_, i) => Math.cos(i * 0.9)),
    [2, 3, 5],
  );
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

test('layerNorm: value and gradients (input, weight, bias) equal the op-by-op traced LayerNorm', () => {
  const before = tf.memory().numTensors;
  const traced = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => {
    const centered = tf.sub(x, tf.mean(x, -1, true));
    const normed = tf.mul(centered, tf.rsqrt(tf.add(tf.mean(tf.square(centered), -1, true), 1e-5)));
    return tf.add(tf.mul(normed, w), b);
  };
  for (const shape of [
    [2, 5, 8],
    [7, 16],
  ]) {
    const n = shape.reduce((a, b) => a * b, 1);
    const c = shape[shape.length - 1]!;
    const x = tf.tensor(
      Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 2 + (i % c) * 0.1),
      shape,
    );
    const w = tf.tensor1d(Float32Array.from({ length: c }, (_, i) => 0.5 + Math.cos(i)));
    const b = tf.tensor1d(Float32Array.from({ length: c }, (_, i) => Math.sin(i * 2)));
    const up = tf.tensor(
      Float32Array.from({ length: n }, (_, i) => Math.cos(i * 1.3)),
      shape,
    );
    const loss = (f: typeof traced) => (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
      tf.sum(tf.mul(f(xx, ww, bb), up));
    const want = tf.grads(loss(traced))([x, w, b]);
    const got = tf.grads(loss((xx, ww, bb) => layerNorm(xx, ww, bb, 1e-5)))([x, w, b]);
    const valueWant = tf.tidy(() => traced(x, w, b));
    const valueGot = tf.tidy(() => layerNorm(x, w, b, 1e-5));
    assert.ok(maxAbsDiff(valueGot.dataSync(), valueWant.dataSync()) < 1e-5, `value ${shape}`);
    ['x', 'weight', 'bias'].forEach((name, k) => {
      assert.deepEqual(got[k]!.shape, want[k]!.shape);
      assert.ok(maxAbsDiff(got[k]!.dataSync(), want[k]!.dataSync()) < 1e-4, `d${name} ${shape}`);
    });
    assert.ok(tf.tidy(() => tf.max(tf.abs(got[0]!)).dataSync()[0]!) > 0.1);
    tf.dispose([x, w, b, up, valueWant, valueGot, ...want, ...got]);
  }
  assert.equal(tf.memory().numTensors, before);
});
