/**
 * Every op a DETR-style detector with a ViT backbone differentiates through, run forward and
 * backward on wasm (patched) and compared with the cpu backend: a kernel missing on wasm or a
 * wrong wasm kernel shows up here by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/util/random.js';
import { initEngine } from '../../src/engine/engine.js';
import {
  assertFiniteDifferences,
  assertWasmMatchesCpu,
  evaluate,
  input,
  randomArray,
  tf,
  type Input,
} from './check.js';

type Op = [name: string, f: (...xs: tf.Tensor[]) => tf.Tensor, shapes: number[][], range?: [number, number]];

const t4 = (x: tf.Tensor) => x as tf.Tensor4D;

const ops: Op[] = [
  ['add broadcast', (a, b) => tf.add(a!, b!), [[2, 3, 4], [4]]],
  [
    'sub broadcast',
    (a, b) => tf.sub(a!, b!),
    [
      [2, 3, 4],
      [3, 1],
    ],
  ],
  [
    'mul broadcast',
    (a, b) => tf.mul(a!, b!),
    [
      [2, 1, 4],
      [3, 4],
    ],
  ],
  [
    'div',
    (a, b) => tf.div(a!, b!),
    [
      [3, 4],
      [3, 4],
    ],
    [0.5, 2],
  ],
  ['squaredDifference', (a, b) => tf.squaredDifference(a!, b!), [[3, 4], [4]]],
  [
    'maximum/minimum',
    (a, b) => tf.add(tf.maximum(a!, b!), tf.minimum(a!, b!)),
    [
      [5, 4],
      [5, 4],
    ],
  ],
  ['pow', (a) => tf.pow(a!, 3), [[3, 4]], [0.5, 2]],
  ['exp', (a) => tf.exp(a!), [[3, 4]]],
  ['log', (a) => tf.log(a!), [[3, 4]], [0.2, 3]],
  ['log1p', (a) => tf.log1p(a!), [[3, 4]], [0.2, 3]],
  ['sqrt', (a) => tf.sqrt(a!), [[3, 4]], [0.2, 3]],
  ['rsqrt', (a) => tf.rsqrt(a!), [[3, 4]], [0.2, 3]],
  ['square', (a) => tf.square(a!), [[3, 4]]],
  ['reciprocal', (a) => tf.reciprocal(a!), [[3, 4]], [0.5, 2]],
  ['abs', (a) => tf.abs(a!), [[3, 4]]],
  ['neg', (a) => tf.neg(a!), [[3, 4]]],
  ['sigmoid', (a) => tf.sigmoid(a!), [[3, 4]], [-4, 4]],
  ['logSigmoid', (a) => tf.logSigmoid(a!), [[3, 4]], [-4, 4]],
  ['softplus', (a) => tf.softplus(a!), [[3, 4]], [-4, 4]],
  ['tanh', (a) => tf.tanh(a!), [[3, 4]], [-3, 3]],
  ['relu', (a) => tf.relu(a!), [[3, 4]]],
  ['leakyRelu', (a) => tf.leakyRelu(a!, 0.1), [[3, 4]]],
  ['elu', (a) => tf.elu(a!), [[3, 4]]],
  ['erf (gelu)', (a) => tf.mul(a!, tf.add(1, tf.erf(tf.div(a!, Math.SQRT2)))), [[3, 4]], [-3, 3]],
  ['clipByValue', (a) => tf.clipByValue(a!, -0.5, 0.5), [[3, 4]]],
  [
    'atan2',
    (a, b) => tf.atan2(a!, b!),
    [
      [3, 4],
      [3, 4],
    ],
    [0.2, 2],
  ],
  ['sin/cos', (a) => tf.add(tf.sin(a!), tf.cos(a!)), [[3, 4]]],
  ['sum', (a) => tf.sum(a!, [0, 2]), [[2, 3, 4]]],
  ['mean', (a) => tf.mean(a!, -1, true), [[2, 3, 4]]],
  ['max', (a) => tf.max(a!, 1), [[2, 3, 4]]],
  ['min', (a) => tf.min(a!, -1), [[2, 3, 4]]],
  ['logSumExp', (a) => tf.logSumExp(a!, -1), [[2, 3, 4]]],
  ['prod', (a) => tf.prod(a!, -1), [[3, 4]], [0.5, 1.5]],
  ['softmax', (a) => tf.softmax(a!), [[2, 3, 5]], [-3, 3]],
  ['logSoftmax', (a) => tf.logSoftmax(a!), [[2, 3, 5]], [-3, 3]],
  [
    'moments (layer norm)',
    (a) => {
      const { mean, variance } = tf.moments(a!, -1, true);
      return tf.div(tf.sub(a!, mean), tf.sqrt(tf.add(variance, 1e-5)));
    },
    [[4, 6]],
  ],
  ['reshape+transpose rank 4', (a) => tf.transpose(tf.reshape(a!, [2, 3, 2, 4]), [0, 2, 1, 3]), [[6, 8]]],
  ['transpose rank 3', (a) => tf.transpose(a!, [2, 0, 1]), [[2, 3, 4]]],
  ['slice', (a) => tf.slice(a!, [0, 1, 1], [2, 2, 3]), [[2, 3, 5]]],
  ['stridedSlice via slice+reshape', (a) => tf.reshape(tf.slice(a!, [1, 0], [2, 4]), [8]), [[4, 4]]],
  [
    'concat axis -1',
    (a, b) => tf.concat([a!, b!], -1),
    [
      [2, 3],
      [2, 5],
    ],
  ],
  [
    'concat axis 0',
    (a, b) => tf.concat([a!, b!], 0),
    [
      [2, 3],
      [4, 3],
    ],
  ],
  ['stack/unstack', (a) => tf.stack(tf.unstack(a!, 1).reverse(), 0), [[2, 3, 4]]],
  [
    'split',
    (a) => {
      const [p, q] = tf.split(a!, [1, 3], -1);
      return tf.mul(p!, tf.sum(q!, -1, true));
    },
    [[3, 4]],
  ],
  [
    'pad',
    (a) =>
      tf.pad(a!, [
        [1, 0],
        [0, 2],
      ]),
    [[3, 4]],
  ],
  [
    'mirrorPad',
    (a) =>
      tf.mirrorPad(
        a!,
        [
          [1, 1],
          [2, 0],
        ],
        'reflect',
      ),
    [[3, 4]],
  ],
  ['tile', (a) => tf.tile(a!, [2, 3]), [[2, 3]]],
  ['expandDims/squeeze', (a) => tf.squeeze(tf.expandDims(a!, 1), [1]), [[3, 4]]],
  ['reverse', (a) => tf.reverse(a!, 1), [[3, 4]]],
  [
    'where',
    (a, b) => tf.where(tf.greater(a!, 0), a!, b!),
    [
      [3, 4],
      [3, 4],
    ],
  ],
  ['cumsum', (a) => tf.cumsum(a!, 1), [[3, 4]]],
  ['gather', (a) => tf.gather(a!, tf.tensor1d([2, 0, 2], 'int32'), 1), [[3, 4]]],
  ['oneHot-weighted sum', (a) => tf.sum(tf.mul(a!, tf.oneHot(tf.tensor1d([1, 3, 0], 'int32'), 4)), -1), [[3, 4]]],
  ['resizeBilinear', (a) => tf.image.resizeBilinear(t4(a!), [7, 5]), [[2, 4, 3, 3]]],
  ['resizeBilinear halfPixelCenters', (a) => tf.image.resizeBilinear(t4(a!), [3, 8], false, true), [[1, 6, 4, 2]]],
  ['resizeBilinear alignCorners', (a) => tf.image.resizeBilinear(t4(a!), [7, 9], true), [[1, 4, 5, 2]]],
  ['resizeNearestNeighbor', (a) => tf.image.resizeNearestNeighbor(t4(a!), [8, 6]), [[1, 4, 3, 2]]],
  [
    'resizeNearestNeighbor halfPixelCenters',
    (a) => tf.image.resizeNearestNeighbor(t4(a!), [3, 8], false, true),
    [[1, 6, 4, 2]],
  ],
  ['avgPool', (a) => tf.avgPool(t4(a!), 2, 2, 'same'), [[1, 5, 5, 3]]],
  ['maxPool (negative)', (a) => tf.maxPool(t4(a!), 3, 2, 'same'), [[1, 7, 7, 2]], [-2, -1]],
  [
    'conv2d',
    (a, b) => tf.conv2d(t4(a!), t4(b!), 2, 'same'),
    [
      [1, 8, 8, 3],
      [3, 3, 3, 4],
    ],
  ],
  [
    'conv2d patch embed',
    (a, b) => tf.conv2d(t4(a!), t4(b!), 4, 'valid'),
    [
      [1, 8, 8, 3],
      [4, 4, 3, 5],
    ],
  ],
  [
    'conv2dTranspose',
    (a, b) => tf.conv2dTranspose(t4(a!), t4(b!), [1, 8, 8, 2], 2, 'same'),
    [
      [1, 4, 4, 3],
      [2, 2, 2, 3],
    ],
  ],
  [
    'depthwiseConv2d',
    (a, b) => tf.depthwiseConv2d(t4(a!), t4(b!), 1, 'same'),
    [
      [1, 6, 6, 3],
      [3, 3, 3, 1],
    ],
  ],
  [
    'matMul batched transposed',
    (a, b) => tf.matMul(a!, b!, false, true),
    [
      [2, 3, 4],
      [2, 5, 4],
    ],
  ],
  [
    'matMul broadcast weight',
    (a, b) => tf.matMul(a!, b!),
    [
      [2, 3, 4],
      [4, 5],
    ],
  ],
  ['cast', (a) => tf.cast(tf.cast(a!, 'float32'), 'float32'), [[3, 4]]],
  [
    'addN',
    (a, b) => tf.addN([a!, b!, a!]),
    [
      [3, 4],
      [3, 4],
    ],
  ],
  ['topk values', (a) => tf.mul(tf.topk(a!, 2).values, 3), [[2, 3, 5]]],
];

test('forward and backward of every training op agree between wasm and cpu', async () => {
  const rng = new Rng(31);
  const failures: string[] = [];
  for (const [name, f, shapes, range] of ops) {
    const inputs: Input[] = shapes.map((s) => input(rng, s, range?.[0] ?? -1, range?.[1] ?? 1));
    try {
      await assertWasmMatchesCpu(name, f, inputs, rng, 2e-5);
    } catch (e) {
      failures.push(`${name}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  assert.deepEqual(failures, []);
});

test('no kernel that a training gradient needs is missing on wasm', async () => {
  const cpu = new Set(tf.getKernelsForBackend('cpu').map((k) => k.kernelName));
  const wasm = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
  const missing = [...cpu].filter((k) => !wasm.has(k)).sort();
  // What remains is complex numbers, FFT, ragged and string ops, drawing, and Einsum (no gradient).
  const allowed = new Set([
    'Complex',
    'ComplexAbs',
    'Draw',
    'Einsum',
    'FFT',
    'IFFT',
    'Imag',
    'RaggedGather',
    'RaggedRange',
    'RaggedTensorToTensor',
    'Real',
    'StaticRegexReplace',
  ]);
  assert.deepEqual(
    missing.filter((k) => !allowed.has(k)),
    [],
  );
});

test('resizeBilinear gradients (patched: halfPixelCenters, non-square) agree with finite differences on wasm', async () => {
  const rng = new Rng(32);
  const cases: [number[], [number, number], boolean, boolean][] = [
    [[1, 4, 3, 2], [7, 5], false, false],
    [[1, 6, 4, 1], [3, 8], false, true],
    [[2, 4, 5, 1], [7, 9], true, false],
  ];
  for (const [shape, size, alignCorners, halfPixel] of cases) {
    const f = (a?: tf.Tensor) => tf.image.resizeBilinear(t4(a!), size, alignCorners, halfPixel);
    const inputs = [input(rng, shape)];
    const dy = randomArray(rng, shape[0]! * size[0] * size[1] * shape[3]!);
    const got = await evaluate('wasm', f, inputs, dy);
    assertFiniteDifferences(`resizeBilinear ${JSON.stringify(shape)} -> ${size}`, f, inputs, dy, got.grads, rng, 10);
  }
});

test('resizeNearestNeighbor gradients send each output to the pixel it read (patched, both backends)', async () => {
  const cases: [[number, number, number, number], [number, number], boolean, boolean][] = [
    [[1, 4, 3, 1], [7, 5], false, false],
    [[1, 6, 4, 1], [3, 8], false, true],
    [[1, 4, 5, 1], [7, 9], true, false],
    [[1, 5, 3, 1], [2, 2], false, true],
  ];
  for (const backend of ['cpu', 'wasm'] as const) {
    await initEngine({ backend });
    for (const [shape, size, alignCorners, halfPixel] of cases) {
      // Pixel values 1..n: the forward output names the pixels read, so dx for dy = 1 must count them.
      const n = shape[1] * shape[2];
      const x = tf.tensor4d(
        Array.from({ length: n }, (_, i) => i + 1),
        shape,
      );
      const f = (t: tf.Tensor) => tf.image.resizeNearestNeighbor(t as tf.Tensor4D, size, alignCorners, halfPixel);
      const y = f(x);
      const counts = new Array<number>(n).fill(0);
      for (const v of await y.data()) counts[v - 1]!++;
      const dx = tf.grad(f)(x);
      assert.deepEqual(
        Array.from(await dx.data()),
        counts,
        `${backend} ${JSON.stringify(shape)} -> ${size} ac=${alignCorners} hp=${halfPixel}`,
      );
      tf.dispose([x, y, dx]);
    }
  }
});
