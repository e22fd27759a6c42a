/** Shared helpers of the engine tests: run a function on a backend, compare arrays, gradients. */
import assert from 'node:assert/strict';
import '../../src/engine/gradients-node.js';
import { initEngine, tf, type BackendName } from '../../src/engine/engine.js';
import type { Rng } from '../../src/util/random.js';

export { tf };

export function randomArray(rng: Rng, size: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = rng.uniform(lo, hi);
  return out;
}

export interface Input {
  shape: number[];
  data: Float32Array;
}

export function input(rng: Rng, shape: number[], lo = -1, hi = 1): Input {
  return { shape, data: randomArray(rng, tf.util.sizeFromShape(shape), lo, hi) };
}

export interface Evaluated {
  shape: number[];
  value: Float32Array;
  /** d sum(f(xs) * dy) / d xs[i], for each input. */
  grads: Float32Array[];
}

/**
 * f and its gradients (for the cotangent dy, random but fixed) on one backend; also checks that
 * the call leaves no tensor and no backend buffer behind.
 */
export async function evaluate(
  backend: BackendName,
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: Input[],
  dy: Float32Array | null,
  withGrads = true,
): Promise<Evaluated> {
  await initEngine({ backend });
  const xs = inputs.map((x) => tf.tensor(x.data, x.shape));
  const before = tf.memory().numTensors;
  const dataIds = (tf.engine().backend as unknown as { numDataIds(): number }).numDataIds();
  const y = tf.tidy(() => f(...xs));
  const value = y.dataSync() as Float32Array;
  const shape = y.shape;
  const dyT = tf.tensor(dy ?? new Float32Array(y.size).fill(1), y.shape);
  y.dispose();
  const grads = withGrads ? tf.grads((...args: tf.Tensor[]) => f(...args))(xs, dyT) : [];
  const gradValues = grads.map((g) => g.dataSync() as Float32Array);
  tf.dispose([...grads, dyT]);
  assert.equal(tf.memory().numTensors, before, `${backend}: tensors leaked`);
  assert.equal(
    (tf.engine().backend as unknown as { numDataIds(): number }).numDataIds(),
    dataIds,
    `${backend}: backend buffers leaked`,
  );
  tf.dispose(xs);
  return { shape, value, grads: gradValues };
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length ${actual.length} != ${expected.length}`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) / (1 + Math.abs(expected[i]!));
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  assert.ok(
    worst <= tol,
    `${label}: element ${at} is ${actual[at]}, expected ${expected[at]} (relative error ${worst} > ${tol})`,
  );
}

/** Compares f's value and gradients on wasm against the cpu backend. */
export async function assertWasmMatchesCpu(
  label: string,
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: Input[],
  rng: Rng,
  tol = 1e-5,
  withGrads = true,
): Promise<Evaluated> {
  const cpu = await evaluate('cpu', f, inputs, null, false);
  const dy = randomArray(rng, cpu.value.length);
  const ref = await evaluate('cpu', f, inputs, dy, withGrads);
  const got = await evaluate('wasm', f, inputs, dy, withGrads);
  assert.deepEqual(got.shape, ref.shape, `${label}: shape`);
  assertClose(got.value, ref.value, tol, `${label}: value`);
  got.grads.forEach((g, i) => assertClose(g, ref.grads[i]!, tol, `${label}: gradient of input ${i}`));
  return got;
}

/**
 * Central finite differences of sum(f(xs) * dy) for a few entries of each input, on the current
 * backend, compared with analytic gradients. Meant for functions linear in each input (matmul,
 * conv), where float32 differences are accurate.
 */
export function assertFiniteDifferences(
  label: string,
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: Input[],
  dy: Float32Array,
  grads: Float32Array[],
  rng: Rng,
  probes = 6,
  eps = 1e-2,
  tol = 2e-3,
): void {
  const loss = (datas: Float32Array[]): number =>
    tf.tidy(() => {
      const y = f(...datas.map((d, i) => tf.tensor(d, inputs[i]!.shape)));
      return tf.sum(tf.mul(y, tf.tensor(dy, y.shape))).dataSync()[0]!;
    });
  inputs.forEach((x, i) => {
    for (let p = 0; p < probes; p++) {
      const j = rng.int(0, x.data.length - 1);
      const plus = x.data.slice();
      const minus = x.data.slice();
      plus[j]! += eps;
      minus[j]! -= eps;
      const datas = inputs.map((y) => y.data);
      const fd =
        (loss(datas.map((d, k) => (k === i ? plus : d))) - loss(datas.map((d, k) => (k === i ? minus : d)))) /
        (2 * eps);
      const g = grads[i]![j]!;
      assert.ok(
        Math.abs(fd - g) <= tol * (1 + Math.abs(g)),
        `${label}: input ${i} entry ${j}: finite difference ${fd}, gradient ${g}`,
      );
    }
  });
}
