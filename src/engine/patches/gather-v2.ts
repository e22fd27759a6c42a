/**
 * GatherV2 for wasm with batchDims > 0: the stock C++ kernel reads the wrong batch for later
 * batches (gather(x [2, 3, 4], [[0, 2, 2], [1, 1, 0]], axis 1, batchDims 1) returns x[1, 2] where
 * x[1, 1] belongs). Batched gathers are copied here slice by slice; batchDims = 0 stays stock.
 */
import { tf } from '../tf.js';
import { asWasm, i32View, offsetOf, patchWasmKernel, type KernelArgs, type KernelImpl } from './wasm-internals.js';

export function gatherV2Wasm(stock: KernelImpl | null): KernelImpl {
  return (args: KernelArgs) => {
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const { axis, batchDims } = args.attrs as unknown as tf.GatherV2Attrs;
    if (stock && !(batchDims > 0)) return stock(args);
    const backend = asWasm(args.backend);
    if (indices.dtype !== 'int32')
      throw new Error(`GatherV2 (wasm patch): indices must be int32, got ${indices.dtype}`);
    const parsedAxis = tf.util.parseAxisParam(axis, x.shape)[0]!;
    const info = tf.backend_util.segment_util.collectGatherOpShapeInfo(
      x as tf.Tensor,
      indices as tf.Tensor,
      parsedAxis,
      batchDims,
    );
    const { batchSize, outerSize, dimSize, sliceSize } = info;
    const out = backend.makeOutput(info.outputShape, x.dtype);
    const perBatch = tf.util.sizeFromShape(indices.shape) / batchSize;
    const idx = i32View(backend, indices);
    const bytes = tf.util.bytesPerElement(x.dtype);
    const heap = backend.wasm.HEAPU8;
    const xAt = offsetOf(backend, x);
    const outAt = offsetOf(backend, out);
    const sliceBytes = sliceSize * bytes;
    for (let b = 0; b < batchSize; b++) {
      for (let o = 0; o < outerSize; o++) {
        const row = b * outerSize + o;
        for (let i = 0; i < perBatch; i++) {
          const j = idx[b * perBatch + i]!;
          if (j < 0 || j >= dimSize) {
            backend.disposeData(out.dataId);
            throw new Error(`GatherV2: the index value ${j} is not in [0, ${dimSize - 1}]`);
          }
          const src = xAt + (row * dimSize + j) * sliceBytes;
          heap.copyWithin(outAt + (row * perBatch + i) * sliceBytes, src, src + sliceBytes);
        }
      }
    }
    return out;
  };
}

export function patchGatherV2(): void {
  patchWasmKernel('GatherV2', gatherV2Wasm);
}
