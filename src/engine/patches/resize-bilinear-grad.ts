/**
 * ResizeBilinearGrad for wasm and cpu. Both stock kernels ignore halfPixelCenters (PyTorch's
 * align_corners=False interpolation), so those gradients come out wrong, and the cpu one also
 * returns [batch, width, height, depth] for non-square images. This is the exact adjoint of
 * tfjs's ResizeBilinear forward (same source coordinates, floors and clamps).
 */
import { tf } from '../engine.js';
import { asWasm, f32View, patchWasmKernel, type KernelArgs, type KernelImpl } from './wasm-internals.js';

interface ResizeAttrs {
  alignCorners: boolean;
  halfPixelCenters: boolean;
}

function sourceTaps(outSize: number, inSize: number, alignCorners: boolean, halfPixel: boolean) {
  const ratio = alignCorners && outSize > 1 ? (inSize - 1) / (outSize - 1) : inSize / outSize;
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
  dy: Float32Array, dyShape: readonly number[], imageShape: readonly number[], attrs: ResizeAttrs, dx: Float32Array,
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
        const wTL = (1 - rf) * (1 - cf), wTR = (1 - rf) * cf, wBL = rf * (1 - cf), wBR = rf * cf;
        for (let d = 0; d < depth; d++, g++) {
          const v = dy[g]!;
          dx[top + left + d] += v * wTL;
          dx[top + right + d] += v * wTR;
          dx[bottom + left + d] += v * wBL;
          dx[bottom + right + d] += v * wBR;
        }
      }
    }
  }
}

function checkShapes(images: tf.TensorInfo, dy: tf.TensorInfo): void {
  if (images.shape.length !== 4 || dy.shape.length !== 4) {
    throw new Error(`ResizeBilinearGrad: rank-4 images and dy expected, got ${JSON.stringify(images.shape)} and ${JSON.stringify(dy.shape)}`);
  }
}

export function resizeBilinearGradWasm(): KernelImpl {
  return (args: KernelArgs) => {
    const backend = asWasm(args.backend);
    const { images, dy } = args.inputs as { images: tf.TensorInfo; dy: tf.TensorInfo };
    checkShapes(images, dy);
    const dx = backend.makeOutput([...images.shape], 'float32');
    resizeBilinearBackward(f32View(backend, dy), dy.shape, images.shape, args.attrs as unknown as ResizeAttrs, f32View(backend, dx));
    return dx;
  };
}

interface CpuBackend {
  data: { get(dataId: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

export function resizeBilinearGradCpu(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as CpuBackend;
  const { images, dy } = args.inputs as { images: tf.TensorInfo; dy: tf.TensorInfo };
  checkShapes(images, dy);
  const dyValues = backend.data.get(dy.dataId).values as Float32Array;
  const dx = new Float32Array(tf.util.sizeFromShape(images.shape));
  resizeBilinearBackward(dyValues, dy.shape, images.shape, args.attrs as unknown as ResizeAttrs, dx);
  return backend.makeTensorInfo([...images.shape], 'float32', dx);
}

export function patchResizeBilinearGrad(): void {
  patchWasmKernel('ResizeBilinearGrad', resizeBilinearGradWasm);
}

export function patchResizeBilinearGradCpu(): void {
  if (tf.getKernel('ResizeBilinearGrad', 'cpu')) tf.unregisterKernel('ResizeBilinearGrad', 'cpu');
  tf.registerKernel({ kernelName: 'ResizeBilinearGrad', backendName: 'cpu', kernelFunc: resizeBilinearGradCpu as unknown as tf.KernelFunc });
}
