/**
 * An ONNX model as plain typed objects, and its encoding as an ONNX ModelProto file (field
 * numbers from onnx/onnx.proto). Only what the exporter writes: tensors of float32/int32/int64/
 * bool, attributes of the basic kinds, fixed or named dimensions.
 */
import { ProtoWriter } from './protobuf.js';

/** TensorProto.DataType values used here. */
export const OnnxType = { float: 1, int32: 6, int64: 7, bool: 9 } as const;
export type OnnxElementType = keyof typeof OnnxType;

/**
 * Float values that stay where they are (a tensor of a checkpoint file) until the tensor is written:
 * the exporter then holds a weight's size, not its values (`read` gives them, each time anew).
 */
export interface DeferredValues {
  readonly length: number;
  readonly byteLength: number;
  read(): Float32Array;
}

export function isDeferred(data: OnnxTensor['data']): data is DeferredValues {
  return !ArrayBuffer.isView(data);
}

/** Bytes of an external data file: in memory, or read when written (a deferred tensor's values). */
export type DataChunk = Uint8Array | { readonly byteLength: number; read(): Uint8Array };

/** The bytes of a chunk (a deferred one read now, and checked to be as long as it said). */
export function chunkBytes(chunk: DataChunk): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  const bytes = chunk.read();
  if (bytes.byteLength !== chunk.byteLength)
    throw new Error(`onnx: a deferred tensor gave ${bytes.byteLength} bytes, not the ${chunk.byteLength} it holds`);
  return bytes;
}

const bytesOf = (data: Exclude<OnnxTensor['data'], DeferredValues>): Uint8Array =>
  new Uint8Array(data.buffer, data.byteOffset, data.byteLength);

export interface OnnxTensor {
  name: string;
  type: OnnxElementType;
  dims: number[];
  /** float: Float32Array (or DeferredValues); int32: Int32Array; int64: BigInt64Array; bool: Uint8Array (0/1). */
  data: Float32Array | Int32Array | BigInt64Array | Uint8Array | DeferredValues;
  /** Stored in an external data file (next to the .onnx file) instead of in the model: where. */
  external?: { location: string; offset: number; length: number };
}

export type OnnxAttribute = number | number[] | string | OnnxTensor | { float: number } | { floats: number[] };

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  /** Numbers are INT attributes unless wrapped ({ float }) ; arrays are INTS unless wrapped ({ floats }). */
  attributes?: Record<string, OnnxAttribute>;
  domain?: string;
}

/** A graph input or output: a fixed size or a symbolic name per dimension. */
export interface OnnxValueInfo {
  name: string;
  type: OnnxElementType;
  dims: (number | string)[];
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
}

export interface OnnxModel {
  graph: OnnxGraph;
  opset: number;
  producer: string;
  /** Stored as metadata_props (e.g. the model hash and size the export was made for). */
  metadata?: Record<string, string>;
}

/** ONNX IR version 8 goes with opsets 17 and 18. */
const IR_VERSION = 8;

const ATTR = { float: 1, int: 2, string: 3, tensor: 4, floats: 6, ints: 7 } as const;

function expectedLength(t: OnnxTensor): number {
  return t.dims.reduce((a, b) => a * b, 1);
}

function writeTensor(w: ProtoWriter, t: OnnxTensor): void {
  if (t.data.length !== expectedLength(t))
    throw new Error(`onnx: tensor '${t.name}' has ${t.data.length} values for dims [${t.dims.join(', ')}]`);
  w.packedInts(1, t.dims).int(2, OnnxType[t.type]).string(8, t.name);
  if (t.external) {
    // external_data (13): location, offset, length entries; data_location (14) = EXTERNAL.
    const { location, offset, length } = t.external;
    for (const [key, value] of [
      ['location', location],
      ['offset', String(offset)],
      ['length', String(length)],
    ] as const)
      w.message(13, (e) => e.string(1, key).string(2, value));
    w.int(14, 1);
    return;
  }
  // raw_data is little-endian, as typed arrays are on every platform Node and browsers run on.
  w.bytes(9, bytesOf(isDeferred(t.data) ? t.data.read() : t.data));
}

function writeAttribute(w: ProtoWriter, name: string, value: OnnxAttribute): void {
  w.string(1, name);
  if (typeof value === 'number') w.int(3, value).int(20, ATTR.int);
  else if (typeof value === 'string') w.string(4, value).int(20, ATTR.string);
  else if (Array.isArray(value)) w.packedInts(8, value).int(20, ATTR.ints);
  else if ('float' in value) w.float(2, value.float).int(20, ATTR.float);
  else if ('floats' in value) w.packedFloats(7, value.floats).int(20, ATTR.floats);
  else w.message(5, (t) => writeTensor(t, value)).int(20, ATTR.tensor);
}

function writeValueInfo(w: ProtoWriter, v: OnnxValueInfo): void {
  w.string(1, v.name).message(2, (type) =>
    type.message(1, (tensor) =>
      tensor.int(1, OnnxType[v.type]).message(2, (shape) => {
        for (const d of v.dims) shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      }),
    ),
  );
}

function writeNode(w: ProtoWriter, n: OnnxNode): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name) w.string(3, n.name);
  w.string(4, n.op);
  for (const [name, value] of Object.entries(n.attributes ?? {})) w.message(5, (a) => writeAttribute(a, name, value));
  if (n.domain) w.string(7, n.domain);
}

function writeGraph(w: ProtoWriter, g: OnnxGraph): void {
  for (const n of g.nodes) w.message(1, (m) => writeNode(m, n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, (m) => writeTensor(m, t));
  for (const v of g.inputs) w.message(11, (m) => writeValueInfo(m, v));
  for (const v of g.outputs) w.message(12, (m) => writeValueInfo(m, v));
}

/** The bytes of an .onnx file. */
export function encodeOnnxModel(model: OnnxModel): Uint8Array {
  const w = new ProtoWriter();
  w.int(1, IR_VERSION).string(2, model.producer);
  w.message(7, (g) => writeGraph(g, model.graph));
  w.message(8, (op) => op.string(1, '').int(2, model.opset));
  for (const [key, value] of Object.entries(model.metadata ?? {}))
    w.message(14, (m) => m.string(1, key).string(2, value));
  return w.finish();
}

/** Tensors at least this large go to the external data file when a model's weights need one. */
const EXTERNAL_MIN_BYTES = 1024;
/** External data offsets are aligned so that ONNX Runtime can map the file. */
const EXTERNAL_ALIGN = 4096;

/**
 * Moves the model's large initializers to an external data file named `location` (ONNX's format
 * for models over protobuf's 2 GB limit): the model's tensors then only point into the file.
 * Several models may share one file: an initializer of the same name is stored once, and every
 * model that has it points to that copy (`select` picks the initializers that go; default: those
 * of at least EXTERNAL_MIN_BYTES). Returns the chunks of the file in order (with alignment
 * padding; a deferred tensor's values stay deferred, read when the file is written) and its size.
 */
export function externalizeInitializers(
  models: OnnxModel | readonly OnnxModel[],
  location: string,
  select: (t: OnnxTensor) => boolean = (t) => t.data.byteLength >= EXTERNAL_MIN_BYTES,
): { chunks: DataChunk[]; bytes: number } {
  const chunks: DataChunk[] = [];
  const placed = new Map<string, NonNullable<OnnxTensor['external']>>();
  let bytes = 0;
  for (const model of Array.isArray(models) ? models : [models]) {
    for (const t of (model as OnnxModel).graph.initializers) {
      if (!select(t)) continue;
      const at = placed.get(t.name);
      if (at) {
        if (at.length !== t.data.byteLength)
          throw new Error(
            `onnx: shared initializer '${t.name}' has ${t.data.byteLength} bytes here, ${at.length} before`,
          );
        t.external = at;
        continue;
      }
      const pad = (EXTERNAL_ALIGN - (bytes % EXTERNAL_ALIGN)) % EXTERNAL_ALIGN;
      if (pad > 0) chunks.push(new Uint8Array(pad));
      bytes += pad;
      const data = t.data;
      chunks.push(isDeferred(data) ? { byteLength: data.byteLength, read: () => bytesOf(data.read()) } : bytesOf(data));
      t.external = { location, offset: bytes, length: t.data.byteLength };
      placed.set(t.name, t.external);
      bytes += t.data.byteLength;
    }
  }
  return { chunks, bytes };
}

/** The bytes of a model's initializers (what decides whether it needs an external data file). */
export function initializerBytes(model: OnnxModel): number {
  return model.graph.initializers.reduce((a, t) => a + t.data.byteLength, 0);
}
