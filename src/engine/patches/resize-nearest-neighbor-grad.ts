/**
 * ResizeNearestNeighborGrad for wasm and cpu. Both stock kernels ignore halfPixelCenters and send
 * the gradient to other pixels than the forward read. This scatters each output's gradient to the
 * exact pixel tfjs's ResizeNearestNeighbor forward picks.
 */
import { tf } from '../engine.js';
import { asWasm, f32View, patchWasmKernel, type KernelArgs, type KernelImpl } from './wasm-internals.js';

interface ResizeAttrs {
  alignCorners: boolean;
  halfPixelCenters: boolean;
}

function nearestSource(outSize: number, inSize: number, alignCorners: boolean, halfPixel: boolean): Int32Array {
  const ratio = alignCorners && outSize > 1 ? (inSize - 1) / (outSize - 1) : inSize / outSize;
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
  dy: Float32Array, dyShape: readonly number[], imageShape: readonly number[], attrs: ResizeAttrs, dx: Float32Array,
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
        for (let d = 0; d < depth; d++, g++) dx[at + d] += dy[g]!;
      }
    }
  }
}

function checkShapes(images: tf.TensorInfo, dy: tf.TensorInfo): void {
  if (images.shape.length !== 4 || dy.shape.length !== 4) {
    throw new Error(`ResizeNearestNeighborGrad: rank-4 images and dy expected, got ${JSON.stringify(images.shape)} and ${JSON.stringify(dy.shape)}`);
  }
}

export function resizeNearestGradWasm(): KernelImpl {
  return (args: KernelArgs) => {
    const backend = asWasm(args.backend);
    const { images, dy } = args.inputs as { images: tf.TensorInfo; dy: tf.TensorInfo };
    checkShapes(images, dy);
    const dx = backend.makeOutput([...images.shape], 'float32');
    resizeNearestBackward(f32View(backend, dy), dy.shape, images.shape, args.attrs as unknown as ResizeAttrs, f32View(backend, dx));
    return dx;
  };
}

interface CpuBackend {
  data: { get(dataId: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

export function resizeNearestGradCpu(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as CpuBackend;
  const { images, dy } = args.inputs as { images: tf.TensorInfo; dy: tf.TensorInfo };
  checkShapes(images, dy);
  const dx = new Float32Array(tf.util.sizeFromShape(images.shape));
  resizeNearestBackward(backend.data.get(dy.dataId).values as Float32Array, dy.shape, images.shape, args.attrs as unknown as ResizeAttrs, dx);
  return backend.makeTensorInfo([...images.shape], 'float32', dx);
}

export function patchResizeNearestGrad(): void {
  patchWasmKernel('ResizeNearestNeighborGrad', resizeNearestGradWasm);
}

export function patchResizeNearestGradCpu(): void {
  if (tf.getKernel('ResizeNearestNeighborGrad', 'cpu')) tf.unregisterKernel('ResizeNearestNeighborGrad', 'cpu');
  tf.registerKernel({ kernelName: 'ResizeNearestNeighborGrad', backendName: 'cpu', kernelFunc: resizeNearestGradCpu as unknown as tf.KernelFunc });
}
