/**
 * MaxPoolGrad for wasm: the stock kernel sends a window's gradient to its first element when the
 * whole window is negative. Here each output's gradient goes to the first maximum of its window
 * (row-major window order, padding excluded), as in TensorFlow, PyTorch and the cpu backend.
 */
import { tf } from '../tf.js';
import { asWasm, f32View, patchWasmKernel, type KernelArgs, type KernelImpl } from './wasm-internals.js';

type Shape4 = [number, number, number, number];

export function maxPoolGradWasm(): KernelImpl {
  return (args: KernelArgs) => {
    const backend = asWasm(args.backend);
    const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
    const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as tf.MaxPoolGradAttrs;
    if (input.shape.length !== 4)
      throw new Error(`MaxPoolGrad (wasm patch): rank-4 input expected, got ${JSON.stringify(input.shape)}`);
    const info = tf.backend_util.computePool2DInfo(input.shape as Shape4, filterSize, strides, 1, pad, dimRoundingMode);
    const { batchSize, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
    const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
    const top = info.padInfo.top;
    const left = info.padInfo.left;
    const dx = backend.makeOutput([...input.shape], 'float32');
    const x = f32View(backend, input);
    const g = f32View(backend, dy);
    const out = f32View(backend, dx);
    out.fill(0);
    const best = new Float32Array(c);
    const where = new Int32Array(c);
    for (let n = 0; n < batchSize; n++) {
      const image = n * h * w * c;
      for (let y = 0; y < oh; y++) {
        for (let xo = 0; xo < ow; xo++) {
          where.fill(-1);
          for (let kh = 0; kh < fh; kh++) {
            const iy = y * sh - top + kh;
            if (iy < 0 || iy >= h) continue;
            for (let kw = 0; kw < fw; kw++) {
              const ix = xo * sw - left + kw;
              if (ix < 0 || ix >= w) continue;
              const at = image + (iy * w + ix) * c;
              for (let ch = 0; ch < c; ch++) {
                const v = x[at + ch]!;
                if (where[ch]! < 0 || v > best[ch]!) {
                  best[ch] = v;
                  where[ch] = at + ch;
                }
              }
            }
          }
          const gAt = ((n * oh + y) * ow + xo) * c;
          for (let ch = 0; ch < c; ch++) {
            const at = where[ch]!;
            if (at >= 0) out[at]! += g[gAt + ch]!;
          }
        }
      }
    }
    return dx;
  };
}

export function patchMaxPoolGrad(): void {
  patchWasmKernel('MaxPoolGrad', maxPoolGradWasm);
}
