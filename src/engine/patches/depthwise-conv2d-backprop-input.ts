/**
 * DepthwiseConv2dNativeBackpropInput for wasm (stock wasm has none). A direct scatter loop:
 * depthwise convolutions are cheap enough that this stays a small share of a backward pass.
 */
import type { tf } from '../tf.js';
import { convInfoOf, type ConvAttrs } from './conv-info.js';
import { asWasm, f32View, patchWasmKernel, type KernelArgs, type KernelImpl } from './wasm-internals.js';

export function depthwiseBackpropInputWasm(): KernelImpl {
  return (args: KernelArgs) => {
    const backend = asWasm(args.backend);
    const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const attrs = args.attrs as unknown as ConvAttrs & { inputShape: number[] };
    const info = convInfoOf('DepthwiseConv2dNativeBackpropInput', attrs.inputShape, filter.shape, attrs, true);
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
    const dx = backend.makeOutput([...attrs.inputShape], 'float32');
    const g = f32View(backend, dy);
    const k = f32View(backend, filter);
    const out = f32View(backend, dx);
    out.fill(0);
    for (let n = 0; n < batchSize; n++) {
      for (let y = 0; y < oh; y++) {
        for (let x = 0; x < ow; x++) {
          const gAt = ((n * oh + y) * ow + x) * co;
          for (let kh = 0; kh < fh; kh++) {
            const iy = y * sh - top + kh * dh;
            if (iy < 0 || iy >= h) continue;
            for (let kw = 0; kw < fw; kw++) {
              const ix = x * sw - left + kw * dw;
              if (ix < 0 || ix >= w) continue;
              const at = ((n * h + iy) * w + ix) * c;
              const kAt = (kh * fw + kw) * co;
              if (mult === 1) {
                for (let ch = 0; ch < c; ch++) out[at + ch]! += g[gAt + ch]! * k[kAt + ch]!;
              } else {
                for (let ch = 0; ch < c; ch++) {
                  let sum = 0;
                  for (let q = 0; q < mult; q++) sum += g[gAt + ch * mult + q]! * k[kAt + ch * mult + q]!;
                  out[at + ch]! += sum;
                }
              }
            }
          }
        }
      }
    }
    return dx;
  };
}

export function patchDepthwiseBackpropInput(): void {
  patchWasmKernel('DepthwiseConv2dNativeBackpropInput', depthwiseBackpropInputWasm);
}
