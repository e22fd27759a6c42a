import { endianness } from 'node:os';
import { bfloat16ArrayToFloat32, halfArrayToFloat32 } from './half.js';
import { dtypeByteSize, type TorchDType, type TorchTensorRef } from './torch-globals.js';
import type { ZipArchive } from './zip-archive.js';

/** Typed array per dtype; F16/BF16 keep their raw bit patterns in a Uint16Array unless upcast. */
export type TensorData =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

function allocate(dtype: TorchDType, n: number): TensorData {
  switch (dtype) {
    case 'F64':
      return new Float64Array(n);
    case 'F32':
      return new Float32Array(n);
    case 'F16':
    case 'BF16':
      return new Uint16Array(n);
    case 'I64':
      return new BigInt64Array(n);
    case 'I32':
      return new Int32Array(n);
    case 'I16':
      return new Int16Array(n);
    case 'I8':
      return new Int8Array(n);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(n);
  }
}

/**
 * Reads one tensor's elements from its storage record into a new contiguous (row-major) array.
 * A contiguous view is one read of exactly its bytes; a strided view reads the storage range it
 * spans and gathers. With `upcastHalf`, F16/BF16 come back as float32 values (dtype 'F32').
 */
export async function readTensorData(
  archive: ZipArchive,
  entryName: string,
  ref: TorchTensorRef,
  options: { upcastHalf?: boolean } = {},
): Promise<{ dtype: TorchDType; data: TensorData }> {
  if (endianness() !== 'LE') throw new Error('reading torch checkpoints needs a little-endian machine');
  const dtype = ref.dtype;
  const es = dtypeByteSize[dtype];
  const n = ref.numel;
  if (options.upcastHalf && (dtype === 'F16' || dtype === 'BF16') && ref.contiguous && n > 0) {
    return { dtype: 'F32', data: await readHalfAsFloat32(archive, entryName, ref) };
  }
  const out = allocate(dtype, n);
  if (n > 0) {
    const { first, end } = ref.extent();
    if (end > ref.storage.numel) {
      throw new Error(
        `tensor reaches element ${end - 1} of storage '${ref.storage.key}', which has ${ref.storage.numel} elements`,
      );
    }
    const outBytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    if (ref.contiguous) {
      await archive.readRange(entryName, first * es, outBytes);
    } else {
      const span = new Uint8Array((end - first) * es);
      await archive.readRange(entryName, first * es, span);
      gather(span, outBytes, es, ref.shape, ref.strides);
    }
  }
  if (options.upcastHalf && (dtype === 'F16' || dtype === 'BF16')) {
    const raw = out as Uint16Array;
    return { dtype: 'F32', data: dtype === 'F16' ? halfArrayToFloat32(raw) : bfloat16ArrayToFloat32(raw) };
  }
  return { dtype, data: out };
}

/** Elements converted per read when widening half-precision data, so only the float32 result is held whole. */
const HALF_CHUNK = 4 * 1024 * 1024;

async function readHalfAsFloat32(archive: ZipArchive, entryName: string, ref: TorchTensorRef): Promise<Float32Array> {
  const n = ref.numel;
  const out = new Float32Array(n);
  const chunk = new Uint16Array(Math.min(n, HALF_CHUNK));
  const convert = ref.dtype === 'F16' ? halfArrayToFloat32 : bfloat16ArrayToFloat32;
  await archive.readChunks(entryName, ref.storageOffset * 2, n * 2, new Uint8Array(chunk.buffer), (bytes, at) => {
    const part = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
    convert(part, out.subarray(at / 2, at / 2 + part.length));
  });
  return out;
}

/**
 * Copies a strided view (element 0 of `src` is the view's first element) into row-major order.
 * Elements are moved as 1-, 2- or 4-byte words (8-byte ones as two words) so that no float
 * passes through a JS number, which could change NaN payloads.
 */
export function gather(
  src: Uint8Array,
  dst: Uint8Array,
  elementSize: number,
  shape: readonly number[],
  strides: readonly number[],
): void {
  const words = elementSize === 8 ? 2 : 1;
  const wordSize = elementSize === 8 ? 4 : elementSize;
  const view = (b: Uint8Array) =>
    wordSize === 4
      ? new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4)
      : wordSize === 2
        ? new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2)
        : b;
  // `src` may start at any byte; copy it to an aligned buffer when its offset does not suit the word view.
  const s = view(src.byteOffset % wordSize === 0 ? src : src.slice());
  const d = view(dst);
  const rank = shape.length;
  if (rank === 0) {
    for (let w = 0; w < words; w++) d[w] = s[w]!;
    return;
  }
  const inner = shape[rank - 1]!;
  const innerStride = strides[rank - 1]! * words;
  const index = new Array<number>(rank - 1).fill(0);
  let outer = 1;
  for (let i = 0; i < rank - 1; i++) outer *= shape[i]!;
  let o = 0;
  for (let row = 0; row < outer; row++) {
    let base = 0;
    for (let i = 0; i < rank - 1; i++) base += index[i]! * strides[i]!;
    base *= words;
    if (words === 1) {
      for (let j = 0; j < inner; j++) d[o++] = s[base + j * innerStride]!;
    } else {
      for (let j = 0; j < inner; j++) {
        const at = base + j * innerStride;
        d[o++] = s[at]!;
        d[o++] = s[at + 1]!;
      }
    }
    for (let i = rank - 2; i >= 0; i--) {
      if (++index[i]! < shape[i]!) break;
      index[i] = 0;
    }
  }
}
