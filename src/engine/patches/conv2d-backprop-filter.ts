/**
 * Conv2DBackpropFilter for wasm (stock wasm has none): im2col of x, then one GEMM
 * dW[fh*fw*cin, cout] = col^T dy[pixels, cout] through the (patched) BatchMatMul kernel.
 */
import type { tf } from '../tf.js';
import { convInfoOf, type ConvAttrs } from './conv-info.js';
import { im2col } from './im2col.js';
import { transposeBatched } from './transpose.js';
import {
  asWasm,
  disposeInfo,
  offsetOf,
  patchWasmKernel,
  runWasmKernel,
  type KernelArgs,
  type KernelImpl,
} from './wasm-internals.js';

export function conv2DBackpropFilterWasm(): KernelImpl {
  return (args: KernelArgs) => {
    const backend = asWasm(args.backend);
    const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const attrs = args.attrs as unknown as ConvAttrs & { filterShape: number[] };
    if (x.dtype !== 'float32' || dy.dtype !== 'float32')
      throw new Error('Conv2DBackpropFilter (wasm patch): float32 inputs expected');
    const info = convInfoOf('Conv2DBackpropFilter', x.shape, attrs.filterShape, attrs);
    const pixels = info.batchSize * info.outHeight * info.outWidth;
    const rows = info.filterHeight * info.filterWidth * info.inChannels;
    const identityCol =
      info.filterHeight === 1 &&
      info.filterWidth === 1 &&
      info.strideHeight === 1 &&
      info.strideWidth === 1 &&
      info.padInfo.top === 0 &&
      info.padInfo.left === 0 &&
      info.outHeight === info.inHeight &&
      info.outWidth === info.inWidth;
    // A 1x1, stride-1, unpadded conv reads x as its own column matrix.
    const col = identityCol ? null : backend.makeOutput([pixels, rows], 'float32');
    try {
      if (col) {
        const heap = new Float32Array(backend.wasm.HEAPU8.buffer);
        im2col(heap, offsetOf(backend, x) / 4, offsetOf(backend, col) / 4, info);
      }
      const colInfo = { dataId: (col ?? x).dataId, shape: [pixels, rows], dtype: 'float32' as const };
      const dy2d = { dataId: dy.dataId, shape: [pixels, info.outChannels], dtype: 'float32' as const };
      const cout = info.outChannels;
      if (cout >= rows) {
        const dw = runWasmKernel('BatchMatMul', {
          inputs: { a: colInfo, b: dy2d },
          backend,
          attrs: { transposeA: true, transposeB: false },
        });
        return { dataId: dw.dataId, shape: [...attrs.filterShape], dtype: 'float32' };
      }
      // Usually cout < fh*fw*cin: transposing dy (pixels x cout) is cheaper than transposing the
      // column matrix, so compute dW^T = dy^T col, then transpose that small result.
      const dwT = runWasmKernel('BatchMatMul', {
        inputs: { a: dy2d, b: colInfo },
        backend,
        attrs: { transposeA: true, transposeB: false },
      });
      try {
        const dw = backend.makeOutput([...attrs.filterShape], 'float32');
        const heap = new Float32Array(backend.wasm.HEAPU8.buffer);
        transposeBatched(heap, offsetOf(backend, dwT) / 4, offsetOf(backend, dw) / 4, 1, cout, rows);
        return dw;
      } finally {
        disposeInfo(backend, dwT);
      }
    } finally {
      if (col) disposeInfo(backend, col);
    }
  };
}

export function patchConv2DBackpropFilter(): void {
  patchWasmKernel('Conv2DBackpropFilter', conv2DBackpropFilterWasm);
}
