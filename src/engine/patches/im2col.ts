/**
 * im2col and its adjoint col2im for NHWC convolutions, on float indices into one Float32Array
 * (the wasm heap): the column matrix has one row per output pixel and (kh, kw, cin) columns, the
 * layout of a TF.js filter [fh, fw, cin, cout] flattened to [fh*fw*cin, cout].
 */
import type { tf } from '../tf.js';

type ConvInfo = tf.backend_util.Conv2DInfo;

/** col[p, (kh*fw + kw)*cin + ci] = x[n, oh*sh - top + kh*dh, ow*sw - left + kw*dw, ci], zero outside. */
export function im2col(heap: Float32Array, xAt: number, colAt: number, info: ConvInfo): void {
  const { batchSize, inHeight: h, inWidth: w, inChannels: cin, outHeight: oh, outWidth: ow } = info;
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
  const { dilationHeight: dh, dilationWidth: dw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const rowLen = fh * fw * cin;
  // With dilation 1 a filter row's fw pixels are adjacent in x: one copy of fw*cin floats.
  const runLen = dw === 1 ? fw * cin : cin;
  let dst = colAt;
  for (let n = 0; n < batchSize; n++) {
    const xImage = xAt + n * h * w * cin;
    for (let y = 0; y < oh; y++) {
      const iy0 = y * sh - top;
      for (let x = 0; x < ow; x++, dst += rowLen) {
        const ix0 = x * sw - left;
        const rowInside = ix0 >= 0 && ix0 + (fw - 1) * dw < w;
        for (let kh = 0; kh < fh; kh++) {
          const iy = iy0 + kh * dh;
          const seg = dst + kh * fw * cin;
          if (iy < 0 || iy >= h) {
            heap.fill(0, seg, seg + fw * cin);
            continue;
          }
          const xRow = xImage + iy * w * cin;
          if (rowInside && dw === 1) {
            copy(heap, xRow + ix0 * cin, seg, runLen);
            continue;
          }
          for (let kw = 0; kw < fw; kw++) {
            const ix = ix0 + kw * dw;
            const d = seg + kw * cin;
            if (ix < 0 || ix >= w) heap.fill(0, d, d + cin);
            else copy(heap, xRow + ix * cin, d, cin);
          }
        }
      }
    }
  }
}

/** dx[n, iy, ix, ci] = sum of the col entries im2col would have read from there (dx zeroed here). */
export function col2im(heap: Float32Array, colAt: number, dxAt: number, info: ConvInfo): void {
  const { batchSize, inHeight: h, inWidth: w, inChannels: cin, outHeight: oh, outWidth: ow } = info;
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
  const { dilationHeight: dh, dilationWidth: dw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const rowLen = fh * fw * cin;
  heap.fill(0, dxAt, dxAt + batchSize * h * w * cin);
  let src = colAt;
  for (let n = 0; n < batchSize; n++) {
    const dxImage = dxAt + n * h * w * cin;
    for (let y = 0; y < oh; y++) {
      const iy0 = y * sh - top;
      for (let x = 0; x < ow; x++, src += rowLen) {
        const ix0 = x * sw - left;
        for (let kh = 0; kh < fh; kh++) {
          const iy = iy0 + kh * dh;
          if (iy < 0 || iy >= h) continue;
          const dxRow = dxImage + iy * w * cin;
          const seg = src + kh * fw * cin;
          for (let kw = 0; kw < fw; kw++) {
            const ix = ix0 + kw * dw;
            if (ix < 0 || ix >= w) continue;
            const d = dxRow + ix * cin;
            const s = seg + kw * cin;
            for (let c = 0; c < cin; c++) heap[d + c]! += heap[s + c]!;
          }
        }
      }
    }
  }
}

function copy(heap: Float32Array, from: number, to: number, len: number): void {
  if (len >= 16) heap.copyWithin(to, from, from + len);
  else for (let i = 0; i < len; i++) heap[to + i] = heap[from + i]!;
}
