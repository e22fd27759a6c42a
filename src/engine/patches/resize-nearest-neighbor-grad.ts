/**
 * ResizeNearestNeighborGrad for wasm and cpu. Both stock kernels ignore halfPixelCenters and send
 * the gradient to other pixels than the forward read. This scatters each output's gradient to the
 * exact pixel tfjs's ResizeNearestNeighbor forward picks.
 */
import { patchResizeGradCpu, patchResizeGradWasm, resizeRatio, type ResizeAttrs } from './resize-grad.js';

function nearestSource(outSize: number, inSize: number, alignCorners: boolean, halfPixel: boolean): Int32Array {
  const ratio = resizeRatio(outSize, inSize, alignCorners);
  const src = new Int32Array(outSize);
  for (let i = 0; i < outSize; i++) {
    const frac = halfPixel ? ratio * (i + 0.5) : ratio * i;
    let s = Math.min(inSize - 1, alignCorners ? Math.round(frac) : Math.floor(frac));
    if (halfPixel) s = Math.max(0, s);
    src[i] = s;
  }
  return src;
}

/** dx (zeroed here) = adjoint of resizeNearestNeighbor applied to dy. */
export function resizeNearestBackward(
  dy: Float32Array,
  dyShape: readonly number[],
  imageShape: readonly number[],
  attrs: ResizeAttrs,
  dx: Float32Array,
): void {
  const [batch, inH, inW, depth] = imageShape as [number, number, number, number];
  const [, outH, outW] = dyShape as [number, number, number, number];
  const rows = nearestSource(outH, inH, attrs.alignCorners, attrs.halfPixelCenters);
  const cols = nearestSource(outW, inW, attrs.alignCorners, attrs.halfPixelCenters);
  dx.fill(0);
  let g = 0;
  for (let b = 0; b < batch; b++) {
    for (let r = 0; r < outH; r++) {
      const row = (b * inH + rows[r]!) * inW;
      for (let c = 0; c < outW; c++) {
        const at = (row + cols[c]!) * depth;
        for (let d = 0; d < depth; d++, g++) dx[at + d]! += dy[g]!;
      }
    }
  }
}

export function patchResizeNearestGrad(): void {
  patchResizeGradWasm('ResizeNearestNeighborGrad', resizeNearestBackward);
}

export function patchResizeNearestGradCpu(): void {
  patchResizeGradCpu('ResizeNearestNeighborGrad', resizeNearestBackward);
}
