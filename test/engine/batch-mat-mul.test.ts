import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/util/random.js';
import { initEngine } from '../../src/engine/engine.js';
import { broadcastBatchIndex } from '../../src/engine/patches/batch-mat-mul.js';
import {
  assertClose,
  assertFiniteDifferences,
  assertWasmMatchesCpu,
  evaluate,
  input,
  tf,
  type Input,
} from './check.js';

/** Plain-loop matmul with numpy batch broadcasting, in float64. */
function referenceMatMul(a: Input, b: Input, ta: boolean, tb: boolean): { shape: number[]; data: Float64Array } {
  const ra = a.shape.length;
  const rb = b.shape.length;
  const m = ta ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const k = ta ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const n = tb ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batches = tf.util.sizeFromShape(outer);
  const out = new Float64Array(batches * m * n);
  const coords = (i: number): number[] => {
    const c: number[] = [];
    for (let d = outer.length - 1; d >= 0; d--) {
      c.unshift(i % outer[d]!);
      i = Math.floor(i / outer[d]!);
    }
    return c;
  };
  const flatIndex = (dims: number[], c: number[]): number => {
    let flat = 0;
    const off = c.length - dims.length;
    dims.forEach((size, d) => (flat = flat * size + (size === 1 ? 0 : c[d + off]!)));
    return flat;
  };
  for (let bi = 0; bi < batches; bi++) {
    const c = coords(bi);
    const aBase = flatIndex(a.shape.slice(0, -2), c) * m * k;
    const bBase = flatIndex(b.shape.slice(0, -2), c) * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let q = 0; q < k; q++) {
          const av = a.data[aBase + (ta ? q * m + i : i * k + q)]!;
          const bv = b.data[bBase + (tb ? j * k + q : q * n + j)]!;
          s += av * bv;
        }
        out[(bi * m + i) * n + j] = s;
      }
    }
  }
  return { shape: [...outer, m, n], data: out };
}

const cases: [number[], number[], boolean, boolean][] = [
  [[5, 7], [7, 3], false, false],
  [[7, 5], [7, 3], true, false],
  [[5, 7], [3, 7], false, true],
  [[7, 5], [3, 7], true, true],
  [[3, 5, 7], [3, 7, 4], false, false],
  [[3, 7, 5], [3, 4, 7], true, true],
  [[2, 3, 5, 7], [2, 3, 4, 7], false, true],
  [[1, 33, 16], [1, 33, 20], true, false],
];

const broadcastCases: [number[], number[], boolean, boolean][] = [
  [[3, 5, 7], [7, 4], false, false],
  [[3, 7, 5], [4, 7], true, true],
  [[5, 7], [3, 7, 4], false, false],
  [[2, 1, 5, 7], [1, 3, 7, 4], false, false],
  [[2, 1, 7, 5], [3, 4, 7], true, true],
  [[1, 3, 5, 7], [2, 1, 4, 7], false, true],
];

test('broadcastBatchIndex maps output batches to operand batches', () => {
  assert.deepEqual(Array.from(broadcastBatchIndex([2, 1], [2, 3])), [0, 0, 0, 1, 1, 1]);
  assert.deepEqual(Array.from(broadcastBatchIndex([1, 3], [2, 3])), [0, 1, 2, 0, 1, 2]);
  assert.deepEqual(Array.from(broadcastBatchIndex([3], [2, 3])), [0, 1, 2, 0, 1, 2]);
  assert.deepEqual(Array.from(broadcastBatchIndex([], [2, 2])), [0, 0, 0, 0]);
});

test('patched wasm BatchMatMul equals a float64 loop, transposes and broadcasting included', async () => {
  const rng = new Rng(1);
  for (const [sa, sb, ta, tb] of [...cases, ...broadcastCases]) {
    const a = input(rng, sa);
    const b = input(rng, sb);
    const ref = referenceMatMul(a, b, ta, tb);
    const got = await evaluate('wasm', (x, y) => tf.matMul(x!, y!, ta, tb), [a, b], null, false);
    assert.deepEqual(got.shape, ref.shape, `${sa} x ${sb}`);
    assertClose(got.value, ref.data, 1e-5, `matMul ${JSON.stringify(sa)} x ${JSON.stringify(sb)} ta=${ta} tb=${tb}`);
  }
});

test('patched wasm BatchMatMul gradients match cpu and finite differences', async () => {
  const rng = new Rng(2);
  for (const [sa, sb, ta, tb] of cases) {
    const inputs = [input(rng, sa), input(rng, sb)];
    const f = (x?: tf.Tensor, y?: tf.Tensor) => tf.matMul(x!, y!, ta, tb);
    const got = await assertWasmMatchesCpu(
      `matMul ${JSON.stringify(sa)} x ${JSON.stringify(sb)} ta=${ta} tb=${tb}`,
      f,
      inputs,
      rng,
    );
    const dy = new Float32Array(got.value.length).map(() => rng.uniform(-1, 1));
    const withDy = await evaluate('wasm', f, inputs, dy);
    assertFiniteDifferences(`matMul ${sa} x ${sb}`, f, inputs, dy, withDy.grads, rng);
  }
});

test('broadcast matMul gradients are summed over the broadcast batch dims', async () => {
  const rng = new Rng(3);
  for (const [sa, sb, ta, tb] of broadcastCases) {
    const inputs = [input(rng, sa), input(rng, sb)];
    const f = (x?: tf.Tensor, y?: tf.Tensor) => tf.matMul(x!, y!, ta, tb);
    const out = referenceMatMul(inputs[0]!, inputs[1]!, ta, tb);
    const dy = new Float32Array(out.data.length).map(() => rng.uniform(-1, 1));
    const got = await evaluate('wasm', f, inputs, dy);
    assert.deepEqual(
      got.grads.map((g) => g.length),
      inputs.map((x) => x.data.length),
    );
    assertFiniteDifferences(`broadcast matMul ${sa} x ${sb}`, f, inputs, dy, got.grads, rng, 8);
  }
});

test('a reshaped weight is not multiplied with a stale cached packing', async () => {
  await initEngine({ backend: 'wasm' });
  const w = tf.variable(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]));
  assert.deepEqual(await tf.matMul(tf.tensor2d([[1, 1]]), w).array(), [[5, 7, 9]]);
  const reshaped = tf.reshape(w, [3, 2]);
  assert.deepEqual(await tf.matMul(tf.tensor2d([[1, 1, 1]]), reshaped).array(), [[9, 12]]);
  assert.deepEqual(await tf.matMul(tf.tensor2d([[1, 0]]), w).array(), [[1, 2, 3]]);
  w.dispose();
  reshaped.dispose();
});

test('degenerate matMul shapes: k = 0 gives zeros', async () => {
  await initEngine({ backend: 'wasm' });
  const y = tf.matMul(tf.zeros([2, 3, 0]), tf.zeros([2, 0, 4]));
  assert.deepEqual(y.shape, [2, 3, 4]);
  assert.ok((await y.data()).every((v) => v === 0));
  y.dispose();
});
