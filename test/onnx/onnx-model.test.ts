import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { encodeOnnxModel, type OnnxModel } from '../../src/onnx/onnx-model.js';
import { ProtoWriter } from '../../src/onnx/protobuf.js';

test('protobuf writer: varints, negative int64, floats, nested messages', () => {
  const w = new ProtoWriter()
    .int(1, 150)
    .int(2, -1)
    .float(3, 1.5)
    .message(4, (m) => m.string(1, 'hi'));
  assert.deepEqual(
    Array.from(w.finish()),
    // 150 = 0x96 0x01; -1 is ten bytes of two's complement; 1.5f = 00 00 c0 3f; nested: tag 0x22, len 4, (0x0a, 2, 'h', 'i').
    [
      0x08, 0x96, 0x01, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x1d, 0x00, 0x00, 0xc0, 0x3f,
      0x22, 0x04, 0x0a, 0x02, 0x68, 0x69,
    ],
  );
});

test('a tiny graph written here runs in ONNX Runtime with the hand-computed result', async () => {
  // y = LeakyRelu(Transpose(x) @ W + b, alpha 0.5), then rows picked by Gather([1, 0]).
  const model: OnnxModel = {
    producer: 'ape-test',
    opset: 17,
    graph: {
      name: 'tiny',
      nodes: [
        { op: 'Transpose', inputs: ['x'], outputs: ['xt'], attributes: { perm: [1, 0] } },
        { op: 'MatMul', inputs: ['xt', 'W'], outputs: ['m'] },
        { op: 'Add', inputs: ['m', 'b'], outputs: ['a'] },
        { op: 'LeakyRelu', inputs: ['a'], outputs: ['l'], attributes: { alpha: { float: 0.5 } } },
        { op: 'Gather', inputs: ['l', 'rows'], outputs: ['y'], attributes: { axis: 0 } },
      ],
      initializers: [
        { name: 'W', type: 'float', dims: [2, 2], data: Float32Array.from([1, 2, 3, 4]) },
        { name: 'b', type: 'float', dims: [2], data: Float32Array.from([-10, 1]) },
        { name: 'rows', type: 'int64', dims: [2], data: BigInt64Array.from([1n, 0n]) },
      ],
      inputs: [{ name: 'x', type: 'float', dims: [2, 'n'] }],
      outputs: [{ name: 'y', type: 'float', dims: [2, 2] }],
    },
    metadata: { purpose: 'test' },
  };
  const session = await ort.InferenceSession.create(encodeOnnxModel(model));
  // x = [[1, 2], [3, 4]] -> xt = [[1, 3], [2, 4]]; xt @ W = [[10, 14], [14, 20]]; + b = [[0, 15], [4, 21]].
  const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [2, 2]) });
  assert.deepEqual(Array.from(out.y!.data as Float32Array), [4, 21, 0, 15]);
  const negative = await session.run({ x: new ort.Tensor('float32', Float32Array.from([-1, 0, -1, 0]), [2, 2]) });
  // xt = [[-1, -1], [0, 0]] -> [[-4, -6], [0, 0]] + b = [[-14, -5], [-10, 1]] -> leaky 0.5: [[-7, -2.5], [-5, 1]].
  assert.deepEqual(Array.from(negative.y!.data as Float32Array), [-5, 1, -7, -2.5]);
  assert.equal(session.inputNames[0], 'x');
  await session.release();
});
