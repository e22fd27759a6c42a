/**
 * The few internals of @tensorflow/tfjs-backend-wasm 4.22.0 that the kernel patches use: the
 * tensor table (dataId -> heap offset and C++ tensor id), output allocation, heap views and the
 * stock kernels. They are not public API, which is why package.json pins TF.js exactly.
 */
import { tf } from '../tf.js';

type TensorInfo = tf.TensorInfo;

export interface WasmTensorData {
  id: number;
  memoryOffset: number;
  shape: number[];
  dtype: tf.DataType;
  refCount: number;
}

export interface WasmModule {
  HEAPU8: Uint8Array;
  HEAPF32: Float32Array;
  HEAP32: Int32Array;
  cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: unknown[]) => unknown;
  tfjs: { disposeData(id: number): void; registerTensor(id: number, size: number, memoryOffset: number): void };
}

export interface WasmBackend {
  wasm: WasmModule;
  dataIdMap: {
    get(dataId: object): WasmTensorData;
    delete(dataId: object): boolean;
  };
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number): TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  incRef(dataId: object): void;
}

export type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap };
export type KernelImpl = (args: KernelArgs) => TensorInfo | TensorInfo[];

export function asWasm(backend: object): WasmBackend {
  const b = backend as Partial<WasmBackend>;
  if (!b.wasm || !b.dataIdMap || typeof b.makeOutput !== 'function') {
    throw new Error('engine: a wasm kernel patch ran on a backend that is not tfjs-backend-wasm 4.22.0');
  }
  return b as WasmBackend;
}

/** Heap offset in bytes of a tensor's data. */
export function offsetOf(backend: WasmBackend, t: TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset;
}

/** The C++ tensor id of a tensor (what cwrap'd kernels take). */
export function idOf(backend: WasmBackend, t: TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).id;
}

/**
 * A Float32Array view on a tensor's heap data. Take views only after every allocation of the
 * kernel: growing the heap detaches earlier views.
 */
export function f32View(backend: WasmBackend, t: TensorInfo): Float32Array {
  const size = tf.util.sizeFromShape(t.shape);
  return new Float32Array(backend.wasm.HEAPU8.buffer, offsetOf(backend, t), size);
}

export function i32View(backend: WasmBackend, t: TensorInfo): Int32Array {
  const size = tf.util.sizeFromShape(t.shape);
  return new Int32Array(backend.wasm.HEAPU8.buffer, offsetOf(backend, t), size);
}

/**
 * Registers a tensor that aliases `byteOffset` of the heap (no allocation, no copy), so that a
 * cwrap'd C++ kernel can read or write a slice of a larger buffer. Release it with releaseView,
 * never with disposeData (that would free memory the view does not own).
 */
export function makeView(backend: WasmBackend, shape: number[], byteOffset: number): TensorInfo {
  return backend.makeOutput(shape, 'float32', byteOffset);
}

export function releaseView(backend: WasmBackend, view: TensorInfo): void {
  const data = backend.dataIdMap.get(view.dataId);
  // Unregistering the C++ id also runs its disposal callbacks (cached XNNPACK operators).
  backend.wasm.tfjs.disposeData(data.id);
  backend.dataIdMap.delete(view.dataId);
}

export function disposeInfo(backend: WasmBackend, t: TensorInfo): void {
  backend.disposeData(t.dataId);
}

/** Looks up the kernel currently registered for wasm (stock or patched) and calls it. */
export function runWasmKernel(name: string, args: KernelArgs): TensorInfo {
  const config = tf.getKernel(name, 'wasm');
  if (!config) throw new Error(`engine: wasm kernel '${name}' is not registered`);
  return config.kernelFunc(args as Parameters<tf.KernelFunc>[0]) as TensorInfo;
}

/**
 * Replaces the wasm kernel `name` with the one `makeKernel` builds around the stock implementation
 * (null when wasm has none). The stock setupFunc still runs, since the stock kernel that the patch
 * falls back to relies on it.
 */
export function patchWasmKernel(name: string, makeKernel: (stock: KernelImpl | null) => KernelImpl): void {
  const stock = tf.getKernel(name, 'wasm');
  if (stock) tf.unregisterKernel(name, 'wasm');
  const stockFunc = stock ? (stock.kernelFunc as unknown as KernelImpl) : null;
  tf.registerKernel({
    kernelName: name,
    backendName: 'wasm',
    kernelFunc: makeKernel(stockFunc) as unknown as tf.KernelFunc,
    ...(stock?.setupFunc ? { setupFunc: stock.setupFunc } : {}),
    ...(stock?.disposeFunc ? { disposeFunc: stock.disposeFunc } : {}),
  });
}
