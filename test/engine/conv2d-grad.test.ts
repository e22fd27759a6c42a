import { test } from 'node:test';
import { Rng } from '../../src/util/random.js';
import { assertFiniteDifferences, assertWasmMatchesCpu, evaluate, input, tf } from './check.js';

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

const cases: { x: number[]; f: number[]; stride: number | [number, number]; pad: Pad }[] = [
  { x: [1, 8, 8, 3], f: [3, 3, 3, 4], stride: 1, pad: 'same' },
  { x: [2, 7, 9, 4], f: [3, 3, 4, 5], stride: 1, pad: 'valid' },
  { x: [1, 9, 9, 3], f: [3, 3, 3, 6], stride: 2, pad: 'same' },
  { x: [2, 8, 8, 5], f: [3, 3, 5, 4], stride: 2, pad: 'valid' },
  { x: [1, 10, 7, 2], f: [3, 2, 2, 3], stride: [2, 1], pad: 'same' },
  { x: [1, 8, 8, 4], f: [1, 1, 4, 6], stride: 1, pad: 'valid' },
  { x: [1, 8, 8, 4], f: [2, 2, 4, 3], stride: 2, pad: 'valid' },
  {
    x: [1, 6, 6, 3],
    f: [3, 3, 3, 2],
    stride: 1,
    pad: [
      [0, 0],
      [1, 2],
      [0, 1],
      [0, 0],
    ],
  },
  {
    x: [1, 7, 7, 2],
    f: [3, 3, 2, 3],
    stride: 2,
    pad: [
      [0, 0],
      [2, 0],
      [1, 1],
      [0, 0],
    ],
  },
  // Padding wider than the filter: the flipped-filter conv would need negative padding.
  { x: [1, 5, 5, 2], f: [2, 2, 2, 3], stride: 1, pad: 3 },
  { x: [1, 16, 16, 20], f: [3, 3, 20, 24], stride: 1, pad: 'same' },
];

test('conv2d gradients (patched Conv2DBackpropInput/Filter) match cpu on wasm', async () => {
  const rng = new Rng(11);
  for (const c of cases) {
    const f = (x?: tf.Tensor, w?: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.stride, c.pad);
    await assertWasmMatchesCpu(
      `conv2d x${JSON.stringify(c.x)} f${JSON.stringify(c.f)} s${c.stride} ${JSON.stringify(c.pad)}`,
      f,
      [input(rng, c.x), input(rng, c.f)],
      rng,
      2e-5,
    );
  }
});

test('conv2d gradients on wasm agree with finite differences', async () => {
  const rng = new Rng(12);
  for (const c of [cases[0]!, cases[2]!, cases[8]!]) {
    const inputs = [input(rng, c.x), input(rng, c.f)];
    const f = (x?: tf.Tensor, w?: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.stride, c.pad);
    const size = tf.tidy(() => f(tf.zeros(c.x), tf.zeros(c.f)).size);
    const dy = new Float32Array(size).map(() => rng.uniform(-1, 1));
    const got = await evaluate('wasm', f, inputs, dy);
    assertFiniteDifferences(`conv2d ${JSON.stringify(c)}`, f, inputs, dy, got.grads, rng);
  }
});

test('conv2dTranspose (Conv2DBackpropInput forward) and its gradients match cpu on wasm', async () => {
  const rng = new Rng(13);
  const shapes: {
    y: number[];
    f: number[];
    out: [number, number, number, number];
    stride: number;
    pad: 'same' | 'valid';
  }[] = [
    { y: [1, 4, 4, 6], f: [3, 3, 3, 6], out: [1, 8, 8, 3], stride: 2, pad: 'same' },
    { y: [2, 5, 5, 4], f: [3, 3, 2, 4], out: [2, 7, 7, 2], stride: 1, pad: 'valid' },
    { y: [1, 3, 3, 2], f: [2, 2, 5, 2], out: [1, 6, 6, 5], stride: 2, pad: 'valid' },
  ];
  for (const s of shapes) {
    const f = (y?: tf.Tensor, w?: tf.Tensor) =>
      tf.conv2dTranspose(y as tf.Tensor4D, w as tf.Tensor4D, s.out, s.stride, s.pad);
    await assertWasmMatchesCpu(
      `conv2dTranspose ${JSON.stringify(s)}`,
      f,
      [input(rng, s.y), input(rng, s.f)],
      rng,
      2e-5,
    );
  }
});

test('depthwise conv2d gradients (wasm has no stock kernels) match cpu', async () => {
  const rng = new Rng(14);
  const shapes: { x: number[]; f: number[]; stride: number; pad: 'same' | 'valid' }[] = [
    { x: [1, 8, 8, 4], f: [3, 3, 4, 1], stride: 1, pad: 'same' },
    { x: [2, 9, 7, 3], f: [3, 3, 3, 2], stride: 2, pad: 'valid' },
    { x: [1, 8, 8, 2], f: [5, 5, 2, 1], stride: 2, pad: 'same' },
  ];
  for (const s of shapes) {
    const f = (x?: tf.Tensor, w?: tf.Tensor) => tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, s.stride, s.pad);
    await assertWasmMatchesCpu(
      `depthwiseConv2d ${JSON.stringify(s)}`,
      f,
      [input(rng, s.x), input(rng, s.f)],
      rng,
      2e-5,
    );
  }
});
