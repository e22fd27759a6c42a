/**
 * ResizeBilinearGrad for wasm and cpu. Both stock kernels ignore halfPixelCenters (PyTorch's
 * align_corners=False interpolation), so those gradients come out wrong, and the cpu one also
 * returns [batch, width, height, depth] for non-square images. This is the exact adjoint of
 * tfjs's ResizeBilinear forward (same source coordinates, floors and clamps).
 */
import { patchResizeGradCpu, patchResizeGradWasm, resizeRatio, type ResizeAttrs } from './resize-grad.js';

function sourceTaps(outSize: number, inSize: number, alignCorners: boolean, halfPixel: boolean) {
  const ratio = resizeRatio(outSize, inSize, alignCorners);
  const lo = new Int32Array(outSize);
  const hi = new Int32Array(outSize);
  const frac = new Float32Array(outSize);
  for (let i = 0; i < outSize; i++) {
    const src = halfPixel ? ratio * (i + 0.5) - 0.5 : ratio * i;
    lo[i] = Math.max(0, Math.floor(src));
    hi[i] = Math.min(inSize - 1, Math.ceil(src));
    frac[i] = src - lo[i]!;
  }
  return { lo, hi, frac };
}

/** dx (zeroed here) = adjoint of resizeBilinear applied to dy. */
export function resizeBilinearBackward(
  dy: Float32Array,
  dyShape: readonly number[],
  imageShape: readonly number[],
  attrs: ResizeAttrs,
  dx: Float32Array,
): void {
  const [batch, inH, inW, depth] = imageShape as [number, number, number, number];
  const [, outH, outW] = dyShape as [number, number, number, number];
  const rows = sourceTaps(outH, inH, attrs.alignCorners, attrs.halfPixelCenters);
  const cols = sourceTaps(outW, inW, attrs.alignCorners, attrs.halfPixelCenters);
  dx.fill(0);
  let g = 0;
  for (let b = 0; b < batch; b++) {
    const image = b * inH * inW * depth;
    for (let r = 0; r < outH; r++) {
      const top = image + rows.lo[r]! * inW * depth;
      const bottom = image + rows.hi[r]! * inW * depth;
      const rf = rows.frac[r]!;
      for (let c = 0; c < outW; c++) {
        const cf = cols.frac[c]!;
        const left = cols.lo[c]! * depth;
        const right = cols.hi[c]! * depth;
        const wTL = (1 - rf) * (1 - cf),
          wTR = (1 - rf) * cf,
          wBL = rf * (1 - cf),
          wBR = rf * cf;
        for (let d = 0; d < depth; d++, g++) {
          const v = dy[g]!;
          dx[top + left + d]! += v * wTL;
          dx[top + right + d]! += v * wTR;
          dx[bottom + left + d]! += v * wBL;
          dx[bottom + right + d]! += v * wBR;
        }
      }
    }
  }
}

export function patchResizeBilinearGrad(): void {
  patchResizeGradWasm('ResizeBilinearGrad', resizeBilinearBackward);
}

export function patchResizeBilinearGradCpu(): void {
  patchResizeGradCpu('ResizeBilinearGrad', resizeBilinearBackward);
}
