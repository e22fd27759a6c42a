/**
 * Conv2DBackpropInput for wasm: the stock kernel is a naive loop ~10x slower than the forward conv.
 * Stride 1: dx is the forward conv (XNNPACK) of dy with the filter flipped in space and with
 * in/out channels swapped, padded by (filter - 1 - pad) on each side. Other strides: one GEMM
 * dcol = dy W^T followed by col2im, which wastes no work on the zeros a dilated dy would hold.
 */
import type { tf } from '../tf.js';
import { convInfoOf, type ConvAttrs } from './conv-info.js';
import { col2im } from './im2col.js';
import {
  asWasm,
  disposeInfo,
  f32View,
  offsetOf,
  patchWasmKernel,
  runWasmKernel,
  type KernelArgs,
  type KernelImpl,
  type WasmBackend,
} from './wasm-internals.js';

/** w'[a, b, o, i] = w[fh-1-a, fw-1-b, i, o]. */
function flippedTransposedFilter(backend: WasmBackend, filter: tf.TensorInfo): tf.TensorInfo {
  const [fh, fw, cin, cout] = filter.shape as [number, number, number, number];
  const out = backend.makeOutput([fh, fw, cout, cin], 'float32');
  const src = f32View(backend, filter);
  const dst = f32View(backend, out);
  for (let a = 0; a < fh; a++) {
    for (let b = 0; b < fw; b++) {
      const s = ((fh - 1 - a) * fw + (fw - 1 - b)) * cin * cout;
      const d = (a * fw + b) * cout * cin;
      for (let i = 0; i < cin; i++) {
        for (let o = 0; o < cout; o++) dst[d + o * cin + i] = src[s + i * cout + o]!;
      }
    }
  }
  return out;
}

export function conv2DBackpropInputWasm(): KernelImpl {
  return (args: KernelArgs) => {
    const backend = asWasm(args.backend);
    const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const attrs = args.attrs as unknown as ConvAttrs & { inputShape: number[] };
    if (dy.dtype !== 'float32' || filter.dtype !== 'float32')
      throw new Error('Conv2DBackpropInput (wasm patch): float32 inputs expected');
    const info = convInfoOf('Conv2DBackpropInput', attrs.inputShape, filter.shape, attrs);
    const { filterHeight: fh, filterWidth: fw, padInfo } = info;
    const pads = [fh - 1 - padInfo.top, fh - 1 - padInfo.bottom, fw - 1 - padInfo.left, fw - 1 - padInfo.right];
    if (info.strideHeight === 1 && info.strideWidth === 1 && pads.every((p) => p >= 0)) {
      const flipped = flippedTransposedFilter(backend, filter);
      try {
        return runWasmKernel('Conv2D', {
          inputs: { x: dy, filter: flipped },
          backend,
          attrs: {
            strides: [1, 1],
            dilations: [1, 1],
            dataFormat: 'NHWC',
            pad: [
              [0, 0],
              [pads[0]!, pads[1]!],
              [pads[2]!, pads[3]!],
              [0, 0],
            ],
          },
        });
      } finally {
        disposeInfo(backend, flipped);
      }
    }
    const pixels = info.batchSize * info.outHeight * info.outWidth;
    const rows = fh * fw * info.inChannels;
    const dcol = runWasmKernel('BatchMatMul', {
      inputs: {
        a: { dataId: dy.dataId, shape: [pixels, info.outChannels], dtype: 'float32' },
        b: { dataId: filter.dataId, shape: [rows, info.outChannels], dtype: 'float32' },
      },
      backend,
      attrs: { transposeA: false, transposeB: true },
    });
    try {
      const dx = backend.makeOutput([...attrs.inputShape], 'float32');
      const heap = new Float32Array(backend.wasm.HEAPU8.buffer);
      col2im(heap, offsetOf(backend, dcol) / 4, offsetOf(backend, dx) / 4, info);
      return dx;
    } finally {
      disposeInfo(backend, dcol);
    }
  };
}

export function patchConv2DBackpropInput(): void {
  patchWasmKernel('Conv2DBackpropInput', conv2DBackpropInputWasm);
}
