/**
 * UnsortedSegmentSum for wasm (stock wasm has none, and every gather gradient needs it): one
 * linear scatter-add pass over the rows of x. Rows whose segment id is negative or
 * >= numSegments are dropped, as in TensorFlow.
 */
import { tf } from '../tf.js';
import { asWasm, offsetOf, patchWasmKernel, type KernelArgs, type KernelImpl } from './wasm-internals.js';

export function unsortedSegmentSumWasm(): KernelImpl {
  return (args: KernelArgs) => {
    const backend = asWasm(args.backend);
    const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
    const { numSegments } = args.attrs as unknown as tf.UnsortedSegmentSumAttrs;
    if (x.dtype !== 'float32' && x.dtype !== 'int32') {
      throw new Error(`UnsortedSegmentSum (wasm patch): x must be float32 or int32, got ${x.dtype}`);
    }
    if (segmentIds.dtype !== 'int32')
      throw new Error(`UnsortedSegmentSum (wasm patch): segmentIds must be int32, got ${segmentIds.dtype}`);
    const idsRank = segmentIds.shape.length;
    if (segmentIds.shape.some((d, i) => d !== x.shape[i])) {
      throw new Error(
        `UnsortedSegmentSum (wasm patch): segmentIds shape ${JSON.stringify(segmentIds.shape)} must be a prefix of x shape ${JSON.stringify(x.shape)}`,
      );
    }
    const rowShape = x.shape.slice(idsRank);
    const inner = tf.util.sizeFromShape(rowShape);
    const rows = tf.util.sizeFromShape(segmentIds.shape);
    const out = backend.makeOutput([numSegments, ...rowShape], x.dtype);
    const buffer = backend.wasm.HEAPU8.buffer;
    const ids = new Int32Array(buffer, offsetOf(backend, segmentIds), rows);
    const view = (t: tf.TensorInfo, size: number): Float32Array | Int32Array =>
      x.dtype === 'float32'
        ? new Float32Array(buffer, offsetOf(backend, t), size)
        : new Int32Array(buffer, offsetOf(backend, t), size);
    const src = view(x, rows * inner);
    const dst = view(out, numSegments * inner);
    dst.fill(0);
    for (let r = 0; r < rows; r++) {
      const seg = ids[r]!;
      if (seg < 0 || seg >= numSegments) continue;
      const s = r * inner;
      const d = seg * inner;
      for (let j = 0; j < inner; j++) dst[d + j]! += src[s + j]!;
    }
    return out;
  };
}

export function patchUnsortedSegmentSum(): void {
  patchWasmKernel('UnsortedSegmentSum', unsortedSegmentSumWasm);
}
