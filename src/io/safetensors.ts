/**
 * The safetensors format (huggingface/safetensors): 8-byte little-endian header length, a JSON
 * header of {name: {dtype, shape, data_offsets}} plus optional "__metadata__" strings, then the
 * tensors' bytes back to back. Reading validates everything the reference reader validates;
 * writing lays files out as the reference writer does (data sorted by descending dtype
 * alignment, then name; header padded with spaces to 8 bytes). No Node APIs: browsers use it too.
 */
import { concatArrays } from '../util/concat-arrays.js';

export type SafetensorsDtype =
  | 'BOOL'
  | 'U8'
  | 'I8'
  | 'I16'
  | 'U16'
  | 'F16'
  | 'BF16'
  | 'I32'
  | 'U32'
  | 'F32'
  | 'F64'
  | 'I64'
  | 'U64';

export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/**
 * One tensor, row-major. F16 and BF16 tensors are held as Float32Array (converted on read,
 * converted back on write); every other dtype as its own typed array (I64 as BigInt64Array).
 */
export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  data: TensorData;
}

export interface SafetensorsFile {
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

/** Where one tensor's bytes are, relative to the start of the data section. */
export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** In data order (by offset). */
  tensors: SafetensorsTensorInfo[];
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file (8 + header length). */
  dataStart: number;
}

/** Input to the writer: data may be any numeric array that fits the dtype. */
export interface SafetensorsInput {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  data: TensorData | readonly number[];
}

export class SafetensorsError extends Error {
  constructor(source: string, detail: string) {
    super(`${source}: ${detail}`);
    this.name = 'SafetensorsError';
  }
}

/** Largest header accepted, as in the reference reader (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

// Order of the reference Dtype enum (increasing alignment); the writer sorts on it, descending.
const DTYPE_ORDER: readonly SafetensorsDtype[] = [
  'BOOL',
  'U8',
  'I8',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
];
const DTYPE_SIZE: Record<SafetensorsDtype, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};
// Formats the reference knows that this reader deliberately does not decode.
const KNOWN_UNSUPPORTED = ['F4', 'F6_E2M3', 'F6_E3M2', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'C64'];

export function dtypeSize(dtype: SafetensorsDtype): number {
  return DTYPE_SIZE[dtype];
}

export function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.hasOwn(DTYPE_SIZE, value);
}

// ---------------------------------------------------------------- float conversions

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits to a number (exact). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** A number to IEEE half bits, rounding to nearest even (as torch's .half()). */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++; // may carry into the exponent: still correct
  return sign | half;
}

function bf16ToFloat(b: number): number {
  u32[0] = b << 16;
  return f32[0]!;
}

/** A number to bfloat16 bits, rounding to nearest even (as torch's .bfloat16()). */
export function floatToBf16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff; // NaN stays NaN (quiet)
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---------------------------------------------------------------- reading

function readU64(bytes: Uint8Array, source: string): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const low = view.getUint32(0, true);
  const high = view.getUint32(4, true);
  if (high !== 0)
    throw new SafetensorsError(
      source,
      `header length ${high * 2 ** 32 + low} is larger than the limit of ${MAX_HEADER_BYTES} bytes`,
    );
  return low;
}

function checkIndex(value: unknown, what: string, source: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new SafetensorsError(source, `${what} must be a non-negative integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Parses and validates the header. fileLength is the size of the whole file, so that only the
 * first 8 + header-length bytes of it need to be in `head`.
 */
export function parseSafetensorsHeader(
  head: Uint8Array,
  fileLength: number,
  source = 'safetensors',
): SafetensorsHeader {
  if (fileLength < 8 || head.length < 8)
    throw new SafetensorsError(
      source,
      `file is ${fileLength} bytes; a safetensors file starts with an 8-byte header length`,
    );
  const n = readU64(head, source);
  if (n > MAX_HEADER_BYTES)
    throw new SafetensorsError(source, `header length ${n} is larger than the limit of ${MAX_HEADER_BYTES} bytes`);
  if (8 + n > fileLength)
    throw new SafetensorsError(source, `header length ${n} runs past the end of the file (${fileLength} bytes)`);
  if (head.length < 8 + n)
    throw new SafetensorsError(source, `need the first ${8 + n} bytes to read the header, got ${head.length}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(8, 8 + n));
  } catch {
    throw new SafetensorsError(source, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{'))
    throw new SafetensorsError(
      source,
      `header must be a JSON object starting with '{', found ${JSON.stringify(text.slice(0, 16))}`,
    );
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SafetensorsError(source, `header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new SafetensorsError(source, 'header is not a JSON object');

  const metadata: Record<string, string> = {};
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        throw new SafetensorsError(source, '__metadata__ must be an object of strings');
      for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string')
          throw new SafetensorsError(source, `__metadata__.${key} must be a string, got ${typeof v}`);
        metadata[key] = v;
      }
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new SafetensorsError(source, `tensor '${name}': entry must be an object`);
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (!isDtype(dtype)) {
      const known = typeof dtype === 'string' && KNOWN_UNSUPPORTED.includes(dtype);
      throw new SafetensorsError(
        source,
        `tensor '${name}': dtype ${JSON.stringify(dtype)} is ${known ? 'not supported by this reader' : 'unknown'}`,
      );
    }
    if (!Array.isArray(shape))
      throw new SafetensorsError(source, `tensor '${name}': shape must be an array, got ${JSON.stringify(shape)}`);
    const dims = shape.map((d, i) => checkIndex(d, `tensor '${name}': shape[${i}]`, source));
    if (!Array.isArray(offsets) || offsets.length !== 2) {
      throw new SafetensorsError(
        source,
        `tensor '${name}': data_offsets must be [begin, end], got ${JSON.stringify(offsets)}`,
      );
    }
    const begin = checkIndex(offsets[0], `tensor '${name}': data_offsets[0]`, source);
    const end = checkIndex(offsets[1], `tensor '${name}': data_offsets[1]`, source);
    if (end < begin)
      throw new SafetensorsError(source, `tensor '${name}': data_offsets [${begin}, ${end}] end before they begin`);
    // Compare in bytes step by step so that absurd shapes cannot overflow into a false match.
    let bytes = DTYPE_SIZE[dtype];
    for (const d of dims) bytes *= d;
    if (bytes !== end - begin) {
      throw new SafetensorsError(
        source,
        `tensor '${name}': shape [${dims.join(', ')}] of ${dtype} needs ${bytes} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
      );
    }
    tensors.push({ name, dtype, shape: dims, begin, end });
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataLength = fileLength - 8 - n;
  let expected = 0;
  for (const t of tensors) {
    if (t.begin !== expected) {
      const problem = t.begin < expected ? 'overlaps the previous tensor' : 'leaves a gap after the previous tensor';
      throw new SafetensorsError(
        source,
        `tensor '${t.name}': data_offsets [${t.begin}, ${t.end}] ${problem} (expected begin ${expected})`,
      );
    }
    if (t.end > dataLength) {
      throw new SafetensorsError(
        source,
        `tensor '${t.name}': data_offsets [${t.begin}, ${t.end}] run past the data section (${dataLength} bytes)`,
      );
    }
    expected = t.end;
  }
  if (expected !== dataLength) {
    throw new SafetensorsError(source, `data section is ${dataLength} bytes but the tensors account for ${expected}`);
  }
  return { tensors, metadata, dataStart: 8 + n };
}

/** Decodes one tensor from its bytes (exactly end - begin of them), copying out of the file buffer. */
export function decodeTensor(info: Pick<SafetensorsTensorInfo, 'dtype'>, bytes: Uint8Array): TensorData {
  // Copy into a fresh, aligned buffer: file offsets need not be aligned, and views would pin the file.
  // Uint8Array.prototype.slice copies even for a Node Buffer (whose own slice is a view into a pool).
  const own = Uint8Array.prototype.slice.call(bytes);
  const buffer = own.buffer;
  switch (info.dtype) {
    case 'BOOL':
    case 'U8':
      return own;
    case 'I8':
      return new Int8Array(buffer);
    case 'I16':
      return new Int16Array(buffer);
    case 'U16':
      return new Uint16Array(buffer);
    case 'I32':
      return new Int32Array(buffer);
    case 'U32':
      return new Uint32Array(buffer);
    case 'F32':
      return new Float32Array(buffer);
    case 'F64':
      return new Float64Array(buffer);
    case 'I64':
      return new BigInt64Array(buffer);
    case 'U64':
      return new BigUint64Array(buffer);
    case 'F16':
    case 'BF16': {
      const bits = new Uint16Array(buffer);
      const out = new Float32Array(bits.length);
      const convert = info.dtype === 'F16' ? halfToFloat : bf16ToFloat;
      for (let i = 0; i < bits.length; i++) out[i] = convert(bits[i]!);
      return out;
    }
  }
}

export function readSafetensorsHeader(bytes: Uint8Array, source = 'safetensors'): SafetensorsHeader {
  return parseSafetensorsHeader(bytes, bytes.length, source);
}

export function readSafetensors(bytes: Uint8Array, source = 'safetensors'): SafetensorsFile {
  const header = parseSafetensorsHeader(bytes, bytes.length, source);
  const tensors = new Map<string, SafetensorsEntry>();
  for (const t of header.tensors) {
    const data = decodeTensor(t, bytes.subarray(header.dataStart + t.begin, header.dataStart + t.end));
    tensors.set(t.name, { dtype: t.dtype, shape: t.shape, data });
  }
  return { tensors, metadata: header.metadata };
}

/** Any entry as Float32Array (integers converted by value; F32 returned as is). */
export function toFloat32(entry: Pick<SafetensorsEntry, 'data'>): Float32Array {
  const { data } = entry;
  if (data instanceof Float32Array) return data;
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = Number(data[i]);
  return out;
}

// ---------------------------------------------------------------- writing

function compareUtf8(a: string, b: string): number {
  // Rust orders String by UTF-8 bytes; JS compares UTF-16 units. They differ only past U+FFFF.
  const enc = new TextEncoder();
  const x = enc.encode(a);
  const y = enc.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/** The writer's data order: descending dtype alignment, then name in UTF-8 byte order. */
export function compareFileOrder(
  aName: string,
  aDtype: SafetensorsDtype,
  bName: string,
  bDtype: SafetensorsDtype,
): number {
  return DTYPE_ORDER.indexOf(bDtype) - DTYPE_ORDER.indexOf(aDtype) || compareUtf8(aName, bName);
}

/** The header's __metadata__: keys in UTF-8 byte order, every value a string (else an error starting with `what`). */
export function sortedMetadata(metadata: Record<string, string>, what: string): Record<string, string> {
  const sorted: Record<string, string> = {};
  for (const key of Object.keys(metadata).sort(compareUtf8)) {
    if (typeof metadata[key] !== 'string') throw new Error(`${what}: metadata '${key}' must be a string`);
    sorted[key] = metadata[key];
  }
  return sorted;
}

/** The file's head: header length (u64 little-endian), then the header JSON padded with spaces to a multiple of 8. */
export function encodeHeader(header: Record<string, unknown>): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(head.buffer).setUint32(0, padded, true);
  head.set(json, 8);
  return head;
}

function integerRange(dtype: SafetensorsDtype): [bigint, bigint] | undefined {
  switch (dtype) {
    case 'BOOL':
      return [0n, 1n];
    case 'U8':
      return [0n, 255n];
    case 'I8':
      return [-128n, 127n];
    case 'I16':
      return [-32768n, 32767n];
    case 'U16':
      return [0n, 65535n];
    case 'I32':
      return [-(2n ** 31n), 2n ** 31n - 1n];
    case 'U32':
      return [0n, 2n ** 32n - 1n];
    case 'I64':
      return [-(2n ** 63n), 2n ** 63n - 1n];
    case 'U64':
      return [0n, 2n ** 64n - 1n];
    default:
      return undefined;
  }
}

/** The little-endian bytes of one tensor in its dtype; throws naming the tensor on bad values. */
export function encodeTensor(name: string, input: SafetensorsInput): Uint8Array {
  const { dtype, data } = input;
  if (!isDtype(dtype)) throw new Error(`writeSafetensors: tensor '${name}': unknown dtype ${JSON.stringify(dtype)}`);
  // The typed array that already holds this dtype's exact bytes (JS engines are little-endian
  // in practice, as the format is).
  const native = NATIVE_ARRAY[dtype];
  if (native && data instanceof native && dtype !== 'BOOL') {
    const typed = data as TensorData;
    return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  }
  const n = data.length;
  const size = DTYPE_SIZE[dtype];
  const out = new Uint8Array(n * size);
  const view = new DataView(out.buffer);
  const range = integerRange(dtype);
  for (let i = 0; i < n; i++) {
    const v = data[i]!;
    if (range) {
      let b: bigint;
      if (typeof v === 'bigint') b = v;
      else if (Number.isInteger(v)) b = BigInt(v);
      else throw new Error(`writeSafetensors: tensor '${name}': ${dtype} value at index ${i} is not an integer (${v})`);
      if (b < range[0] || b > range[1])
        throw new Error(`writeSafetensors: tensor '${name}': value ${b} at index ${i} is out of range for ${dtype}`);
      const off = i * size;
      switch (dtype) {
        case 'BOOL':
        case 'U8':
          out[off] = Number(b);
          break;
        case 'I8':
          view.setInt8(off, Number(b));
          break;
        case 'I16':
          view.setInt16(off, Number(b), true);
          break;
        case 'U16':
          view.setUint16(off, Number(b), true);
          break;
        case 'I32':
          view.setInt32(off, Number(b), true);
          break;
        case 'U32':
          view.setUint32(off, Number(b), true);
          break;
        case 'I64':
          view.setBigInt64(off, b, true);
          break;
        default:
          view.setBigUint64(off, b, true);
      }
    } else {
      const x = Number(v);
      if (dtype === 'F32') view.setFloat32(i * 4, x, true);
      else if (dtype === 'F64') view.setFloat64(i * 8, x, true);
      else if (dtype === 'F16') view.setUint16(i * 2, floatToHalf(x), true);
      else view.setUint16(i * 2, floatToBf16(x), true);
    }
  }
  return out;
}

const NATIVE_ARRAY: Partial<Record<SafetensorsDtype, abstract new (...args: never[]) => unknown>> = {
  U8: Uint8Array,
  I8: Int8Array,
  I16: Int16Array,
  U16: Uint16Array,
  I32: Int32Array,
  U32: Uint32Array,
  F32: Float32Array,
  F64: Float64Array,
  I64: BigInt64Array,
  U64: BigUint64Array,
};

function entriesOf(
  tensors: Record<string, SafetensorsInput> | Map<string, SafetensorsInput>,
): [string, SafetensorsInput][] {
  return tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
}

/**
 * The file as a header plus each tensor's bytes in file order, so large files can be written
 * piece by piece without one big buffer.
 */
export function encodeSafetensorsParts(
  tensors: Record<string, SafetensorsInput> | Map<string, SafetensorsInput>,
  metadata?: Record<string, string>,
): { header: Uint8Array; parts: Uint8Array[] } {
  const entries = entriesOf(tensors);
  for (const [name, t] of entries) {
    if (name === '__metadata__' || name.length === 0)
      throw new Error(`writeSafetensors: invalid tensor name ${JSON.stringify(name)}`);
    if (!isDtype(t.dtype))
      throw new Error(`writeSafetensors: tensor '${name}': unknown dtype ${JSON.stringify(t.dtype)}`);
    let count = 1;
    t.shape.forEach((d, i) => {
      if (!Number.isSafeInteger(d) || d < 0)
        throw new Error(`writeSafetensors: tensor '${name}': shape[${i}] must be a non-negative integer, got ${d}`);
      count *= d;
    });
    if (count !== t.data.length) {
      throw new Error(
        `writeSafetensors: tensor '${name}': shape [${t.shape.join(', ')}] has ${count} elements but data has ${t.data.length}`,
      );
    }
  }
  entries.sort(([an, a], [bn, b]) => compareFileOrder(an, a.dtype, bn, b.dtype));

  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header.__metadata__ = sortedMetadata(metadata, 'writeSafetensors');
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of entries) {
    const bytes = encodeTensor(name, t);
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    parts.push(bytes);
  }
  return { header: encodeHeader(header), parts };
}

export function writeSafetensors(
  tensors: Record<string, SafetensorsInput> | Map<string, SafetensorsInput>,
  metadata?: Record<string, string>,
): Uint8Array {
  const { header, parts } = encodeSafetensorsParts(tensors, metadata);
  return concatArrays(Uint8Array, [header, ...parts]);
}
