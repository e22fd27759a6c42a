/** DepthwiseConv2dNativeBackpropFilter for wasm (stock wasm has none): a direct accumulation loop. */
import type { tf } from '../tf.js';
import { convInfoOf, type ConvAttrs } from './conv-info.js';
import { asWasm, f32View, patchWasmKernel, type KernelArgs, type KernelImpl } from './wasm-internals.js';

export function depthwiseBackpropFilterWasm(): KernelImpl {
  return (args: KernelArgs) => {
    const backend = asWasm(args.backend);
    const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const attrs = args.attrs as unknown as ConvAttrs & { filterShape: number[] };
    const info = convInfoOf('DepthwiseConv2dNativeBackpropFilter', x.shape, attrs.filterShape, attrs, true);
    const { batchSize, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow, outChannels: co } = info;
    const {
      filterHeight: fh,
      filterWidth: fw,
      strideHeight: sh,
      strideWidth: sw,
      dilationHeight: dh,
      dilationWidth: dw,
    } = info;
    const mult = co / c;
    const top = info.padInfo.top;
    const left = info.padInfo.left;
    const dk = backend.makeOutput([...attrs.filterShape], 'float32');
    const xs = f32View(backend, x);
    const g = f32View(backend, dy);
    const out = f32View(backend, dk);
    out.fill(0);
    for (let n = 0; n < batchSize; n++) {
      for (let y = 0; y < oh; y++) {
        for (let xo = 0; xo < ow; xo++) {
          const gAt = ((n * oh + y) * ow + xo) * co;
          for (let kh = 0; kh < fh; kh++) {
            const iy = y * sh - top + kh * dh;
            if (iy < 0 || iy >= h) continue;
            for (let kw = 0; kw < fw; kw++) {
              const ix = xo * sw - left + kw * dw;
              if (ix < 0 || ix >= w) continue;
              const at = ((n * h + iy) * w + ix) * c;
              const kAt = (kh * fw + kw) * co;
              for (let ch = 0; ch < c; ch++) {
                const v = xs[at + ch]!;
                for (let q = 0; q < mult; q++) out[kAt + ch * mult + q]! += v * g[gAt + ch * mult + q]!;
              }
            }
          }
        }
      }
    }
    return dk;
  };
}

export function patchDepthwiseBackpropFilter(): void {
  patchWasmKernel('DepthwiseConv2dNativeBackpropFilter', depthwiseBackpropFilterWasm);
}
