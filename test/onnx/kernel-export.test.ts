import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { initEngine, tf } from '../../src/engine/engine.js';
import { hostInput, stageEnd } from '../../src/engine/graph-inputs.js';
import { msDeformAttn } from '../../src/engine/ms-deform-attn.js';
import { recordKernels, recordingDifferences } from '../../src/onnx/kernel-recorder.js';
import { segmentRecording } from '../../src/onnx/segments.js';
import { encodeOnnxModel } from '../../src/onnx/onnx-model.js';
import { exportModule } from '../../src/onnx/export-module.js';
import { OrtModule } from '../../src/onnx/ort-module.js';
import { detach } from '../../src/nn/ops.js';
import { layerNorm } from '../../src/nn/layer-norm.js';
import { fuseLayerNorms } from '../../src/onnx/fuse-layer-norm.js';
import { Rng } from '../../src/util/random.js';

await initEngine();

/** Records fn over named inputs, exports the graph (exportModule) and runs it on ONNX Runtime (OrtModule). */
async function runExported(
  fn: () => tf.Tensor,
  inputs: Record<string, tf.Tensor>,
  weights: Record<string, tf.Tensor> = {},
) {
  const exported = exportModule(() => ({ out: fn() }), inputs, new Map(Object.entries(weights)));
  const module = await OrtModule.create(exported);
  try {
    const got = await module.run(
      Object.fromEntries(Object.entries(inputs).map(([n, t]) => [n, t.dataSync() as Float32Array | Int32Array])),
    );
    return {
      expected: exported.tfjs.out.dataSync() as Float32Array,
      actual: got.out.data as Float32Array,
      recording: exported.recording,
      graph: exported.graph,
    };
  } finally {
    await module.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('deformable attention kernel -> GridSample per level equals the TF.js kernel (points on and off the maps)', async () => {
  const rng = new Rng(7);
  const shapes: [number, number][] = [
    [6, 5],
    [3, 3],
    [2, 1],
  ];
  const [bs, heads, dHead, numQuery, points] = [2, 3, 4, 5, 2];
  const s = shapes.reduce((a, [h, w]) => a + h * w, 0);
  const rand = (n: number, lo: number, hi: number) =>
    Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.next());
  const value = tf.tensor4d(rand(bs * s * heads * dHead, -1, 1), [bs, s, heads, dHead]);
  // Locations from -0.3 to 1.3: some samples fall partly or wholly off the map (zero padding).
  const loc = tf.tensor(rand(bs * numQuery * heads * shapes.length * points * 2, -0.3, 1.3), [
    bs,
    numQuery,
    heads,
    shapes.length,
    points * 2,
  ]);
  const weights = tf.tensor(rand(bs * numQuery * heads * shapes.length * points, 0, 1), [
    bs,
    numQuery,
    heads,
    shapes.length,
    points,
  ]);
  const { expected, actual, recording } = await runExported(() => msDeformAttn(value, shapes, loc, weights), {
    value,
    loc,
    weights,
  });
  assert.deepEqual(
    recording.kernels.map((k) => k.kernel),
    ['ApeMsDeformAttn'],
  );
  assert.ok(expected.some((v) => Math.abs(v) > 0.1));
  const diff = maxAbsDiff(actual, expected);
  assert.ok(diff < 1e-5, `max abs diff ${diff}`);
});

test('recorder: weights become initializers, host constants are kept, a detach is the same value, an unmapped kernel is named', async () => {
  const x = tf.tensor2d([1, -2, 3, 4], [2, 2]);
  const w = tf.variable(tf.tensor2d([0.5, 1, -1, 2], [2, 2]));
  const { expected, actual, recording } = await runExported(
    () =>
      tf.tidy(() => {
        const y = detach(tf.relu(tf.matMul(x, w)));
        return tf.add(tf.mul(y, tf.tensor1d([2, 3])), 1);
      }),
    { x },
    { w },
  );
  // relu([[1*0.5 + -2*-1, 1 - 4], [1.5 - 4, 3 + 8]]) = [[2.5, 0], [0, 11]]; * [2, 3] + 1.
  assert.deepEqual(Array.from(expected), [6, 1, 1, 34]);
  assert.deepEqual(Array.from(actual), [6, 1, 1, 34]);
  assert.deepEqual(
    [...recording.values.values()].filter((v) => v.source === 'constant').map((v) => v.shape),
    [[2], []],
  );

  const odd = tf.tensor1d([1, 2, 3]);
  await assert.rejects(
    runExported(() => tf.cumsum(odd), { odd }),
    /no ONNX mapping for the TF.js kernel 'Cumsum'/,
  );
});

test('a host input cuts the graph: the values read before it leave segment 0, the host input enters segment 1', () => {
  const x = tf.tensor1d([3, 1, 2]);
  const { recording } = recordKernels(
    () =>
      tf.tidy(() => {
        const scores = tf.mul(x, 2);
        const best = scores.dataSync().indexOf(Math.max(...scores.dataSync()));
        const index = hostInput('pick', tf.tensor1d([best], 'int32'));
        return tf.add(tf.gather(scores, index), x.shape[0]);
      }),
    new Map([[x, 'x']]),
    new Map(),
  );
  const out = recording.kernels[recording.kernels.length - 1]!.outputs[0]!;
  const graph = segmentRecording(recording, [out], () => new Float32Array(0), 'test');
  assert.equal(graph.segments.length, 2);
  assert.deepEqual(
    graph.hostSteps.map((h) => [h.input.name, h.reads.length]),
    [['pick', 1]],
  );
  const read = graph.hostSteps[0]!.reads[0]!;
  assert.deepEqual(
    graph.segments[0]!.inputs.map((i) => i.name),
    ['x'],
  );
  assert.deepEqual(
    graph.segments[0]!.outputs.map((o) => o.name),
    [read],
  );
  assert.deepEqual(graph.segments[1]!.inputs.map((i) => i.name).sort(), [read, 'pick'].sort());
});

test("OrtModule runs a graph cut at a host input with the caller's step between the segments; a bad feed and a missing step are named", async () => {
  const x = tf.tensor1d([3, 1, 2]);
  const exported = exportModule(
    () =>
      tf.tidy(() => {
        const scores = tf.mul(x, 2);
        const best = scores.dataSync().indexOf(Math.max(...scores.dataSync()));
        return { out: tf.add(tf.gather(scores, hostInput('pick', tf.tensor1d([best], 'int32'))), 3) };
      }),
    { x },
    new Map(),
  );
  assert.equal(exported.graph.segments.length, 2);
  assert.deepEqual(Array.from(exported.tfjs.out.dataSync()), [9]); // 2 * 3 + 3
  const module = await OrtModule.create(exported);
  const argmax = ([scores]: (Float32Array | Int32Array | Uint8Array)[]) =>
    Int32Array.of(scores!.indexOf(Math.max(...scores!)));
  try {
    // Other data than the recording's: the step picks index 1 of [2, 10, 4].
    const got = await module.run({ x: Float32Array.of(1, 5, 2) }, { pick: argmax });
    assert.deepEqual(Array.from(got.out.data), [13]);
    await assert.rejects(module.run({ x: Float32Array.of(1, 5, 2) }), /host input 'pick', which has no step/);
    await assert.rejects(
      module.run({ x: Float32Array.of(1, 5) }, { pick: argmax }),
      /'x' must be a Float32Array of 3 values \(float32 \[3\]\), got a Float32Array of 2/,
    );
  } finally {
    await module.release();
  }
  tf.dispose([x, exported.tfjs.out]);
});

test('a stage end cuts the graph when asked: values made after it run in segment 1 (no host step), the values it needs pass from segment 0', async () => {
  const x = tf.tensor1d([3, -1, 2]);
  const { result, recording, recordedValue } = recordKernels(
    () =>
      tf.tidy(() => {
        const y = tf.relu(tf.mul(x, 2)); // [6, 0, 4]
        stageEnd('first');
        return tf.add(tf.mul(y, x), x); // [21, -1, 10]
      }),
    new Map([[x, 'x']]),
    new Map(),
  );
  assert.deepEqual(recording.stageEnds, [{ stage: 'first', kernelCount: 2 }]);
  const out = recordedValue(result)!.name;
  const uncut = segmentRecording(recording, [out], () => new Float32Array(0), 'test');
  assert.equal(uncut.segments.length, 1);
  assert.throws(
    () => segmentRecording(recording, [out], () => new Float32Array(0), 'test', ['second']),
    /no stage 'second' to cut after \(the forward marked: first\)/,
  );
  const graph = segmentRecording(recording, [out], () => new Float32Array(0), 'test', ['first']);
  assert.equal(graph.segments.length, 2);
  assert.deepEqual(graph.hostSteps, []);
  const [first, second] = graph.segments as [(typeof graph.segments)[0], (typeof graph.segments)[0]];
  assert.equal(first.after, undefined);
  assert.equal(second.after, 'first');
  const relu = recording.kernels[1]!.outputs[0]!;
  assert.deepEqual(
    first.outputs.map((o) => o.name),
    [relu],
  );
  assert.deepEqual(second.inputs.map((i) => i.name).sort(), [relu, 'x'].sort());
  const known = new Map<string, ort.Tensor>([['x', new ort.Tensor('float32', Float32Array.of(3, -1, 2), [3])]]);
  for (const segment of graph.segments) {
    const session = await ort.InferenceSession.create(encodeOnnxModel(segment.model));
    const res = await session.run(Object.fromEntries(segment.inputs.map((i) => [i.name, known.get(i.name)!])));
    for (const o of segment.outputs) known.set(o.name, res[o.name]!);
    await session.release();
  }
  assert.deepEqual(Array.from(known.get(out)!.data as Float32Array), [21, -1, 10]);
});

test('two recordings on different data: host arithmetic on read-back values without a hostInput is reported', () => {
  const record = (values: number[]) => {
    const x = tf.tensor1d(values);
    const { result, recording } = recordKernels(
      () =>
        tf.tidy(() => {
          const doubled = tf.mul(x, 2);
          const shifted = Float32Array.from(doubled.dataSync(), (v) => v + 1);
          return tf.add(x, tf.tensor1d(shifted));
        }),
      new Map([[x, 'x']]),
      new Map(),
    );
    tf.dispose([x, result]);
    return recording;
  };
  assert.deepEqual(recordingDifferences(record([1, 2]), record([1, 2])), []);
  const differences = recordingDifferences(record([1, 2]), record([3, 4]));
  assert.equal(differences.length, 1);
  assert.match(
    differences[0]!,
    /kernel 1 \(Add\) input b: constant \[2\] differs between runs \(made after a host read: name it with hostInput\)/,
  );
});

test('kernel mappings beyond the tiny forward: pooling, bilinear resizes, padding, stacking, casts, selects, reductions, strided and padded convs, transposed matmuls', async () => {
  const rng = new Rng(3);
  const rand = (shape: number[]) =>
    tf.tensor(
      Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.next() * 2 - 1),
      shape,
    );
  const x = rand([1, 6, 5, 3]);
  const w = rand([3, 3, 3, 4]);
  const m = rand([2, 4, 3]);
  const cases: [string, () => tf.Tensor][] = [
    ['maxPool same 2x2/2', () => tf.maxPool(x as tf.Tensor4D, 2, 2, 'same')],
    ['maxPool valid 3x3/1', () => tf.maxPool(x as tf.Tensor4D, 3, 1, 'valid')],
    // The mask feature's upsampling of the encoder's stride-8 level to stride 4 (half-pixel), and
    // the other two coordinate rules, up and down, odd and even sizes.
    ['resizeBilinear half-pixel x2', () => tf.image.resizeBilinear(x as tf.Tensor4D, [12, 10], false, true)],
    ['resizeBilinear half-pixel to 7x3', () => tf.image.resizeBilinear(x as tf.Tensor4D, [7, 3], false, true)],
    ['resizeBilinear align corners', () => tf.image.resizeBilinear(x as tf.Tensor4D, [11, 9], true, false)],
    ['resizeBilinear asymmetric', () => tf.image.resizeBilinear(x as tf.Tensor4D, [9, 4], false, false)],
    ['conv stride 2 same', () => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same')],
    ['conv valid, dilated', () => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid', 'NHWC', 2)],
    [
      'conv explicit padding',
      () =>
        tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, [
          [0, 0],
          [2, 0],
          [1, 1],
          [0, 0],
        ]),
    ],
    [
      'pad',
      () =>
        tf.pad(
          x,
          [
            [0, 0],
            [1, 2],
            [0, 1],
            [0, 0],
          ],
          0.5,
        ),
    ],
    ['stack', () => tf.stack([m, tf.neg(m)], 1)],
    ['split by sizes', () => tf.split(m, [1, 2], 2)[1]!],
    [
      'cast, select, compare',
      () => tf.where(tf.greater(m, 0), tf.cast(tf.cast(tf.mul(m, 10), 'int32'), 'float32'), tf.minimum(m, -0.25)),
    ],
    [
      'reductions: global max, sum over axes, min',
      () => tf.add(tf.add(tf.max(m), tf.sum(m, [0, 2], true)), tf.min(m, 1, true)),
    ],
    ['matMul with transposes, broadcast batch', () => tf.matMul(m, rand([3, 4]), true, true)],
    [
      'squared difference, leaky relu, tanh, abs, pow',
      () => tf.pow(tf.abs(tf.tanh(tf.leakyRelu(tf.squaredDifference(m, 0.3), 0.2))), 1.5),
    ],
    [
      'squeeze, expandDims, transpose rank 4',
      () => tf.transpose(tf.expandDims(tf.squeeze(tf.slice(x, [0, 1, 0, 0], [1, 4, 5, 3]), [0]), 1), [2, 0, 1, 3]),
    ],
  ];
  for (const [name, fn] of cases) {
    const { expected, actual } = await runExported(() => tf.tidy(fn), { x, w, m });
    const diff = maxAbsDiff(actual, expected);
    assert.ok(diff < 1e-5, `${name}: max abs diff ${diff}`);
  }
});

test('layer norms are fused into one ONNX LayerNormalization with the TF.js numbers; a chain whose intermediates are used elsewhere is left as it is', async () => {
  const rng = new Rng(5);
  const rand = (n: number) => Float32Array.from({ length: n }, () => 3 * rng.next() - 1);
  const x = tf.tensor3d(rand(2 * 5 * 8), [2, 5, 8]);
  const gamma = tf.tensor1d(rand(8));
  const beta = tf.tensor1d(rand(8));
  const weights = { gamma, beta };
  const record = (fn: () => tf.Tensor) =>
    recordKernels(fn, new Map([[x, 'x']]), new Map(Object.entries(weights))).recording;

  const plain = record(() => layerNorm(x, gamma, beta, 1e-5));
  const { recording, fused } = fuseLayerNorms(plain);
  assert.equal(fused, 1);
  const out = recording.kernels.at(-1)!.outputs[0]!;
  const graph = segmentRecording(recording, [out], (n) => weights[n as 'gamma']!.dataSync() as Float32Array, 'test');
  const ops = graph.segments[0]!.model.graph.nodes.map((n) => n.op);
  assert.deepEqual(ops, ['LayerNormalization']);
  const session = await ort.InferenceSession.create(encodeOnnxModel(graph.segments[0]!.model));
  const res = await session.run({ x: new ort.Tensor('float32', x.dataSync() as Float32Array, x.shape) });
  await session.release();
  const expected = layerNorm(x, gamma, beta, 1e-5);
  assert.ok(maxAbsDiff(res[out]!.data as Float32Array, expected.dataSync() as Float32Array) < 1e-5);

  // The centered values also feed another kernel: the chain must stay unfused.
  const shared = record(() => {
    const centered = tf.sub(x, tf.mean(x, -1, true));
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(centered), -1, true), 1e-5));
    return tf.add(tf.add(tf.mul(tf.mul(centered, rstd), gamma), beta), tf.abs(centered));
  });
  assert.equal(fuseLayerNorms(shared).fused, 0);
  tf.dispose([x, gamma, beta, expected]);
});

test("'shapes' recording (heavy kernels not run) records what a full forward records", () => {
  const w = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
  const x = tf.tensor3d([1, -2, 3, 4, 0.5, 6], [1, 2, 3]);
  const fn = () => {
    const h = tf.add(tf.matMul(tf.reshape(x, [2, 3]), w), 1);
    const logits = tf.sum(tf.softmax(tf.concat([h, tf.slice(h, [0, 0], [2, 1])], 1)), -1);
    // A host read made into a host input, as the proposal selection does.
    const picks = Array.from(logits.dataSync()).map((_, i) => i);
    return tf.gather(h, hostInput('picks', tf.tensor1d(picks, 'int32')));
  };
  const full = recordKernels(fn, new Map([[x, 'x']]), new Map([['w', w]]));
  const shapes = recordKernels(fn, new Map([[x, 'x']]), new Map([['w', w]]), { compute: 'shapes' });
  assert.deepEqual(recordingDifferences(full.recording, shapes.recording), []);
  assert.deepEqual(shapes.result.shape, [2, 2]);
  assert.deepEqual(Array.from(shapes.result.dataSync()), [0, 0, 0, 0]);
  // [[1, -2, 3], [4, 0.5, 6]] x [[1, 2], [3, 4], [5, 6]] + 1
  assert.deepEqual(Array.from(full.result.dataSync()), [11, 13, 36.5, 47]);
  tf.dispose([w, x, full.result, shapes.result]);
});
