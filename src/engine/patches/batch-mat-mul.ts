/**
 * BatchMatMul for wasm. The stock kernel reaches XNNPACK's fast GEMM only for one batch without
 * transposes; everything else (every matMul in a backward pass, batched attention) runs a naive
 * loop at 1-2 GFLOPS. Here a transposed operand is transposed explicitly (a blocked copy)
 * and each batch is one fast GEMM on heap views, so all shapes run at the 2-D speed.
 * Batch dims broadcast like numpy (each output batch reads its own a and b batch), which the stock
 * kernel gets wrong when both sides have different batch dims.
 */
import { tf } from '../tf.js';
import {
  asWasm,
  disposeInfo,
  idOf,
  makeView,
  offsetOf,
  patchWasmKernel,
  releaseView,
  type KernelArgs,
  type KernelImpl,
  type WasmBackend,
  type WasmModule,
} from './wasm-internals.js';
import { transposeBatched } from './transpose.js';

type Gemm = (
  aId: number,
  aShape: Uint8Array,
  aRank: number,
  bId: number,
  bShape: Uint8Array,
  bRank: number,
  transposeA: boolean,
  transposeB: boolean,
  outId: number,
) => void;

const gemms = new WeakMap<WasmModule, Gemm>();

function gemmOf(backend: WasmBackend): Gemm {
  let gemm = gemms.get(backend.wasm);
  if (!gemm) {
    gemm = backend.wasm.cwrap('BatchMatMul', null, [
      'number',
      'array',
      'number',
      'number',
      'array',
      'number',
      'number',
      'number',
      'number',
    ]) as unknown as Gemm;
    gemms.set(backend.wasm, gemm);
  }
  return gemm;
}

function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

/** For each output batch, the flat batch index into an operand with `dims` broadcast to `outDims`. */
export function broadcastBatchIndex(dims: number[], outDims: number[]): Int32Array {
  const total = tf.util.sizeFromShape(outDims);
  const index = new Int32Array(total);
  const offset = outDims.length - dims.length;
  const coords = new Array<number>(outDims.length).fill(0);
  for (let i = 0; i < total; i++) {
    let flat = 0;
    for (let d = 0; d < dims.length; d++) {
      const size = dims[d]!;
      flat = flat * size + (size === 1 ? 0 : coords[d + offset]!);
    }
    index[i] = flat;
    for (let d = outDims.length - 1; d >= 0; d--) {
      coords[d]!++;
      if (coords[d]! < outDims[d]!) break;
      coords[d] = 0;
    }
  }
  return index;
}

/** A new tensor [batch, cols, rows] holding `t` viewed as [batch, rows, cols], transposed. */
function transposed(backend: WasmBackend, t: tf.TensorInfo, batch: number, rows: number, cols: number): tf.TensorInfo {
  const out = backend.makeOutput([batch, cols, rows], 'float32');
  const heap = new Float32Array(backend.wasm.HEAPU8.buffer);
  transposeBatched(heap, offsetOf(backend, t) / 4, offsetOf(backend, out) / 4, batch, rows, cols);
  return out;
}

/**
 * XNNPACK keeps a GEMM's packed right operand cached by tensor id until the tensor is disposed.
 * Only variables are worth that: packing a weight is ~10% of a 1024^3 GEMM, while caching the
 * packing of every transient gradient would double backward-pass memory. The cache is also keyed
 * by id alone, so a reshaped tensor (same id, other [k, n]) would reuse a stale packing, which
 * makes the stock kernel return wrong numbers; each tensor here keeps the [k, n] it was first
 * packed as, and any other use gets a fresh id (a heap view).
 */
const packedAs = new WeakMap<object, string>();

function isVariableData(dataId: object): boolean {
  const variables = tf.engine().state.registeredVariables;
  for (const name in variables) if (variables[name]!.dataId === dataId) return true;
  return false;
}

function cacheableId(backend: WasmBackend, b: tf.TensorInfo, k: number, n: number): number | null {
  if (!isVariableData(b.dataId)) return null;
  const data = backend.dataIdMap.get(b.dataId);
  const key = `${k}x${n}`;
  const seen = packedAs.get(data);
  if (seen === undefined) packedAs.set(data, key);
  return seen === undefined || seen === key ? data.id : null;
}

/**
 * C = A B with row-major A [m, k], B [k, n], C [m, n] at heap byte offsets. `wholeB` is the tensor
 * when B is all of it (its packing can then be cached across calls).
 */
function gemmAt(
  backend: WasmBackend,
  m: number,
  k: number,
  n: number,
  aOff: number,
  bOff: number,
  cOff: number,
  wholeB: tf.TensorInfo | null,
): void {
  const views: tf.TensorInfo[] = [];
  const viewId = (shape: number[], offset: number): number => {
    const v = makeView(backend, shape, offset);
    views.push(v);
    return idOf(backend, v);
  };
  try {
    const aId = viewId([m, k], aOff);
    const bId = (wholeB && cacheableId(backend, wholeB, k, n)) ?? viewId([k, n], bOff);
    const cId = viewId([m, n], cOff);
    gemmOf(backend)(aId, shapeBytes([1, m, k]), 3, bId, shapeBytes([1, k, n]), 3, false, false, cId);
  } finally {
    for (const v of views) releaseView(backend, v);
  }
}

export function batchMatMulWasm(stock: KernelImpl | null): KernelImpl {
  return (args: KernelArgs) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) {
      if (!stock) throw new Error('BatchMatMul: float32 inputs of rank >= 2 expected');
      return stock(args);
    }
    const backend = asWasm(args.backend);
    const ra = a.shape.length;
    const rb = b.shape.length;
    const m = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
    const kA = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
    const kB = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
    const n = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
    if (kA !== kB) {
      throw new Error(
        `BatchMatMul: inner dimensions differ: a ${JSON.stringify(a.shape)} (transposeA=${transposeA}) and ` +
          `b ${JSON.stringify(b.shape)} (transposeB=${transposeB})`,
      );
    }
    const k = kA;
    const outerA = a.shape.slice(0, -2);
    const outerB = b.shape.slice(0, -2);
    const outerOut = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
    const outShape = [...outerOut, m, n];
    const batchA = tf.util.sizeFromShape(outerA);
    const batchB = tf.util.sizeFromShape(outerB);
    const batchOut = tf.util.sizeFromShape(outerOut);
    if (m === 0 || n === 0 || batchOut === 0) return backend.makeOutput(outShape, 'float32');
    if (k === 0) {
      const out = backend.makeOutput(outShape, 'float32');
      new Float32Array(backend.wasm.HEAPU8.buffer, offsetOf(backend, out), batchOut * m * n).fill(0);
      return out;
    }

    // Row-major [batch, m, k] and [batch, k, n] operands.
    const aRows = transposeA ? transposed(backend, a, batchA, k, m) : null;
    const bRows = transposeB ? transposed(backend, b, batchB, n, k) : null;
    try {
      const out = backend.makeOutput(outShape, 'float32');
      const aOff = offsetOf(backend, aRows ?? a);
      const bOff = offsetOf(backend, bRows ?? b);
      const cOff = offsetOf(backend, out);
      if (batchB === 1 && batchA === batchOut) {
        // One shared right operand: all batches of a stack into one tall GEMM.
        gemmAt(backend, batchA * m, k, n, aOff, bOff, cOff, bRows ?? b);
      } else {
        const ia = broadcastBatchIndex(outerA, outerOut);
        const ib = broadcastBatchIndex(outerB, outerOut);
        for (let i = 0; i < batchOut; i++) {
          gemmAt(
            backend,
            m,
            k,
            n,
            aOff + ia[i]! * m * k * 4,
            bOff + ib[i]! * k * n * 4,
            cOff + i * m * n * 4,
            batchB === 1 ? (bRows ?? b) : null,
          );
        }
      }
      return out;
    } finally {
      if (aRows) disposeInfo(backend, aRows);
      if (bRows) disposeInfo(backend, bRows);
    }
  };
}

export function patchBatchMatMul(): void {
  patchWasmKernel('BatchMatMul', batchMatMulWasm);
}
