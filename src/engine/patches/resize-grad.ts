/**
 * The kernel scaffolding the two resize-gradient patches share: each supplies the host-side
 * adjoint of its resize, and this wraps it as a wasm kernel (on heap views) and a cpu kernel.
 */
import { tf } from '../tf.js';
import { asWasm, f32View, patchWasmKernel, type KernelArgs } from './wasm-internals.js';

export interface ResizeAttrs {
  alignCorners: boolean;
  halfPixelCenters: boolean;
}

/** Source pixels per output pixel along one axis, as tfjs's resize kernels compute it. */
export function resizeRatio(outSize: number, inSize: number, alignCorners: boolean): number {
  return alignCorners && outSize > 1 ? (inSize - 1) / (outSize - 1) : inSize / outSize;
}

/** Writes dx (zeroing it first) = adjoint of the resize applied to dy; images [B, H, W, C], dy [B, outH, outW, C]. */
export type ResizeBackward = (
  dy: Float32Array,
  dyShape: readonly number[],
  imageShape: readonly number[],
  attrs: ResizeAttrs,
  dx: Float32Array,
) => void;

interface CpuBackend {
  data: { get(dataId: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

function rank4Inputs(kernelName: string, args: KernelArgs): { images: tf.TensorInfo; dy: tf.TensorInfo } {
  const { images, dy } = args.inputs as { images: tf.TensorInfo; dy: tf.TensorInfo };
  if (images.shape.length !== 4 || dy.shape.length !== 4) {
    throw new Error(
      `${kernelName}: rank-4 images and dy expected, got ${JSON.stringify(images.shape)} and ${JSON.stringify(dy.shape)}`,
    );
  }
  return { images, dy };
}

/** Replaces the stock wasm kernel `kernelName` with `backward` run on the heap. */
export function patchResizeGradWasm(kernelName: string, backward: ResizeBackward): void {
  patchWasmKernel(kernelName, () => (args: KernelArgs) => {
    const backend = asWasm(args.backend);
    const { images, dy } = rank4Inputs(kernelName, args);
    const dx = backend.makeOutput([...images.shape], 'float32');
    backward(f32View(backend, dy), dy.shape, images.shape, args.attrs as unknown as ResizeAttrs, f32View(backend, dx));
    return dx;
  });
}

/** Replaces the stock cpu kernel `kernelName` with `backward`. */
export function patchResizeGradCpu(kernelName: string, backward: ResizeBackward): void {
  const kernelFunc = (args: KernelArgs): tf.TensorInfo => {
    const backend = args.backend as CpuBackend;
    const { images, dy } = rank4Inputs(kernelName, args);
    const dx = new Float32Array(tf.util.sizeFromShape(images.shape));
    backward(
      backend.data.get(dy.dataId).values as Float32Array,
      dy.shape,
      images.shape,
      args.attrs as unknown as ResizeAttrs,
      dx,
    );
    return backend.makeTensorInfo([...images.shape], 'float32', dx);
  };
  if (tf.getKernel(kernelName, 'cpu')) tf.unregisterKernel(kernelName, 'cpu');
  tf.registerKernel({ kernelName, backendName: 'cpu', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
}
