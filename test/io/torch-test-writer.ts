/**
 * Test-only builders for hand-crafted torch checkpoints: a pickle byte emitter (protocol 2
 * opcodes, written out by hand) and a small zip writer (stored or deflated entries, optional
 * zip64 records), so the reader can be fed exactly the bytes a test needs, lies included.
 */
import { crc32, deflateRawSync } from 'node:zlib';

/** Emits pickle opcodes. */
export class PickleBytes {
  private readonly out: number[] = [];

  op(...bytes: number[]): this {
    this.out.push(...bytes);
    return this;
  }
  proto(v = 2): this {
    return this.op(0x80, v);
  }
  stop(): this {
    return this.op(0x2e);
  }
  mark(): this {
    return this.op(0x28);
  }
  none(): this {
    return this.op(0x4e);
  }
  bool(v: boolean): this {
    return this.op(v ? 0x88 : 0x89);
  }
  emptyDict(): this {
    return this.op(0x7d);
  }
  emptyList(): this {
    return this.op(0x5d);
  }
  emptyTuple(): this {
    return this.op(0x29);
  }
  tuple(): this {
    return this.op(0x74);
  }
  tupleN(n: 1 | 2 | 3): this {
    return this.op(0x84 + n);
  }
  setitem(): this {
    return this.op(0x73);
  }
  setitems(): this {
    return this.op(0x75);
  }
  append(): this {
    return this.op(0x61);
  }
  appends(): this {
    return this.op(0x65);
  }
  reduce(): this {
    return this.op(0x52);
  }
  build(): this {
    return this.op(0x62);
  }
  newobj(): this {
    return this.op(0x81);
  }
  binpersid(): this {
    return this.op(0x51);
  }
  binput(i: number): this {
    return this.op(0x71, i);
  }
  binget(i: number): this {
    return this.op(0x68, i);
  }
  longBinput(i: number): this {
    return this.op(0x72, ...u32(i));
  }
  longBinget(i: number): this {
    return this.op(0x6a, ...u32(i));
  }
  memoize(): this {
    return this.op(0x94);
  }
  pop(): this {
    return this.op(0x30);
  }

  int(n: number): this {
    if (n >= 0 && n < 256) return this.op(0x4b, n);
    if (n >= 0 && n < 65536) return this.op(0x4d, n & 0xff, n >> 8);
    if (n >= -(2 ** 31) && n < 2 ** 31) return this.op(0x4a, ...u32(n >>> 0));
    return this.long1(BigInt(n));
  }

  long1(v: bigint): this {
    const bytes: number[] = [];
    let x = v;
    // Two's complement, little-endian, shortest form that keeps the sign.
    do {
      bytes.push(Number(x & 0xffn));
      x >>= 8n;
    } while (!((x === 0n && !(bytes[bytes.length - 1]! & 0x80)) || (x === -1n && bytes[bytes.length - 1]! & 0x80)));
    return this.op(0x8a, bytes.length, ...bytes);
  }

  float(v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, false);
    return this.op(0x47, ...b);
  }

  str(s: string): this {
    const b = new TextEncoder().encode(s);
    return b.length < 256 ? this.op(0x8c, b.length, ...b) : this.op(0x58, ...u32(b.length), ...b);
  }

  binunicode(s: string): this {
    const b = new TextEncoder().encode(s);
    return this.op(0x58, ...u32(b.length), ...b);
  }

  global(module: string, name: string): this {
    return this.op(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`));
  }

  stackGlobal(module: string, name: string): this {
    return this.str(module).str(name).op(0x93);
  }

  ints(values: readonly number[]): this {
    if (values.length === 0) return this.emptyTuple();
    if (values.length <= 3) {
      for (const v of values) this.int(v);
      return this.tupleN(values.length as 1 | 2 | 3);
    }
    this.mark();
    for (const v of values) this.int(v);
    return this.tuple();
  }

  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

function u32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

export interface TensorSpec {
  storage: string;
  /** e.g. 'FloatStorage' */
  storageType: string;
  numel: number;
  offset?: number;
  shape: number[];
  stride?: number[];
  /** Wrap in torch._utils._rebuild_parameter. */
  parameter?: boolean;
}

export function rowMajorStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Emits `_rebuild_tensor_v2((storage pid), offset, shape, stride, False, OrderedDict())` the way torch does. */
export function emitTensor(p: PickleBytes, t: TensorSpec): void {
  if (t.parameter) p.global('torch._utils', '_rebuild_parameter').mark();
  p.global('torch._utils', '_rebuild_tensor_v2').mark();
  p.mark().str('storage').global('torch', t.storageType).str(t.storage).str('cpu').int(t.numel).tuple().binpersid();
  p.int(t.offset ?? 0)
    .ints(t.shape)
    .ints(t.stride ?? rowMajorStrides(t.shape))
    .bool(false);
  p.global('collections', 'OrderedDict').emptyTuple().reduce();
  p.tuple().reduce();
  if (t.parameter) p.bool(true).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
}

/**
 * The pickle of `{"model": OrderedDict(tensors), "optimizer": {"state": {0: {"exp_avg": tensor}}}, "iteration": 7}`,
 * with `optimizer` only when given.
 */
export function checkpointPickle(model: Record<string, TensorSpec>, optimizer?: TensorSpec): Uint8Array {
  const p = new PickleBytes().proto(2).emptyDict().mark();
  p.str('model').global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  for (const [k, t] of Object.entries(model)) {
    p.str(k);
    emitTensor(p, t);
  }
  p.setitems();
  // The state dict's `_metadata` attribute, set with BUILD as torch does.
  p.emptyDict()
    .str('_metadata')
    .global('collections', 'OrderedDict')
    .emptyTuple()
    .reduce()
    .str('')
    .emptyDict()
    .str('version')
    .int(1)
    .setitem()
    .setitem()
    .setitem()
    .build();
  if (optimizer) {
    p.str('optimizer').emptyDict().str('state').emptyDict().int(0).emptyDict().str('exp_avg');
    emitTensor(p, optimizer);
    p.setitem().setitem().setitem();
    p.str('lr').float(2e-4).setitem();
  }
  p.str('iteration').int(7);
  return p.setitems().stop().bytes();
}

export interface ZipEntrySpec {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
  /** Value written as the CRC-32 (default: the real one). */
  crc?: number;
  /** Size written in the central directory (default: the real one), to craft lying archives. */
  claimedSize?: number;
}

/**
 * A zip archive laid out as torch writes it: local headers padded (extra field 'FB') so that
 * data starts at 64-byte boundaries, then the central directory; with `zip64`, every entry's
 * sizes and offset go through the zip64 extra field and the zip64 end records are written.
 */
export function zipArchive(entries: ZipEntrySpec[], options: { zip64?: boolean } = {}): Uint8Array {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const central: Uint8Array[] = [];
  const enc = new TextEncoder();
  for (const e of entries) {
    const name = enc.encode(e.name);
    const body = e.deflate ? new Uint8Array(deflateRawSync(e.data)) : e.data;
    const crc = e.crc ?? crc32(e.data) >>> 0;
    const size = e.claimedSize ?? e.data.byteLength;
    const csize = e.deflate ? body.byteLength : (e.claimedSize ?? body.byteLength);
    const base = offset + 30 + name.length + 4;
    const pad = (64 - (base % 64)) % 64;
    const local = new Uint8Array(30 + name.length + 4 + pad);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 45, true);
    lv.setUint16(6, 0x0800, true);
    lv.setUint16(8, e.deflate ? 8 : 0, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, csize, true);
    lv.setUint32(22, size, true);
    lv.setUint16(26, name.length, true);
    lv.setUint16(28, 4 + pad, true);
    local.set(name, 30);
    lv.setUint16(30 + name.length, 0x4246, true); // 'FB' padding record, as torch writes
    lv.setUint16(30 + name.length + 2, pad, true);
    const headerOffset = offset;
    chunks.push(local, body);
    offset += local.byteLength + body.byteLength;

    const extra = options.zip64 ? 4 + 24 : 0;
    const c = new Uint8Array(46 + name.length + extra);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 45, true);
    cv.setUint16(6, 45, true);
    cv.setUint16(8, 0x0800, true);
    cv.setUint16(10, e.deflate ? 8 : 0, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, options.zip64 ? 0xffffffff : csize, true);
    cv.setUint32(24, options.zip64 ? 0xffffffff : size, true);
    cv.setUint16(28, name.length, true);
    cv.setUint16(30, extra, true);
    cv.setUint32(42, options.zip64 ? 0xffffffff : headerOffset, true);
    c.set(name, 46);
    if (options.zip64) {
      const x = 46 + name.length;
      cv.setUint16(x, 0x0001, true);
      cv.setUint16(x + 2, 24, true);
      cv.setBigUint64(x + 4, BigInt(size), true);
      cv.setBigUint64(x + 12, BigInt(csize), true);
      cv.setBigUint64(x + 20, BigInt(headerOffset), true);
    }
    central.push(c);
  }
  const cdOffset = offset;
  const cdSize = central.reduce((a, c) => a + c.byteLength, 0);
  chunks.push(...central);
  offset += cdSize;
  if (options.zip64) {
    const rec = new Uint8Array(56);
    const rv = new DataView(rec.buffer);
    rv.setUint32(0, 0x06064b50, true);
    rv.setBigUint64(4, 44n, true);
    rv.setUint16(12, 45, true);
    rv.setUint16(14, 45, true);
    rv.setBigUint64(24, BigInt(entries.length), true);
    rv.setBigUint64(32, BigInt(entries.length), true);
    rv.setBigUint64(40, BigInt(cdSize), true);
    rv.setBigUint64(48, BigInt(cdOffset), true);
    const loc = new Uint8Array(20);
    const lv = new DataView(loc.buffer);
    lv.setUint32(0, 0x07064b50, true);
    lv.setBigUint64(8, BigInt(offset), true);
    lv.setUint32(16, 1, true);
    chunks.push(rec, loc);
    offset += 76;
  }
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, options.zip64 ? 0xffff : entries.length, true);
  ev.setUint16(10, options.zip64 ? 0xffff : entries.length, true);
  ev.setUint32(12, options.zip64 ? 0xffffffff : cdSize, true);
  ev.setUint32(16, options.zip64 ? 0xffffffff : cdOffset, true);
  chunks.push(eocd);
  const out = new Uint8Array(offset + 22);
  let p = 0;
  for (const c of chunks) {
    out.set(c, p);
    p += c.byteLength;
  }
  return out;
}

/** Bytes of a typed array, for storage records. */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** A torch-style archive: `<prefix>/data.pkl`, `<prefix>/version`, and `<prefix>/data/<key>` storages. */
export function torchArchive(
  pickle: Uint8Array,
  storages: Record<string, Uint8Array>,
  options: { prefix?: string; zip64?: boolean; deflate?: boolean; extra?: ZipEntrySpec[] } = {},
): Uint8Array {
  const prefix = options.prefix ?? 'archive';
  return zipArchive(
    [
      { name: `${prefix}/data.pkl`, data: pickle, deflate: options.deflate },
      ...Object.entries(storages).map(([k, data]) => ({ name: `${prefix}/data/${k}`, data, deflate: options.deflate })),
      { name: `${prefix}/version`, data: new TextEncoder().encode('3\n') },
      ...(options.extra ?? []),
    ],
    { zip64: options.zip64 },
  );
}
