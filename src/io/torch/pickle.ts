/**
 * A Python pickle interpreter that builds plain data and never runs anything: every GLOBAL is
 * resolved through the caller's allow-list (`findGlobal`), and REDUCE / NEWOBJ / BUILD may only
 * apply objects that list returned. Enough of protocols 0-5 for `torch.save` files (which use
 * protocol 2); opcodes that would need arbitrary classes (INST, OBJ, EXT*) or out-of-band buffers
 * are refused. Every allocation is bounded by the input size and the limits below.
 *
 * Python values map to: None → null, bool → boolean, int → number (bigint past 2^53),
 * float → number, str → string, bytes → Uint8Array, list → array, tuple → frozen array,
 * dict → PickleDict (a Map), set/frozenset → Set.
 */

/** A callable or class the allow-list hands out for a GLOBAL. */
export interface PickleGlobal {
  /** `module.name`, for messages. */
  readonly qualifiedName: string;
  /** REDUCE: `f(*args)`. */
  call?(args: readonly unknown[]): unknown;
  /** NEWOBJ: `cls.__new__(cls, *args)`. */
  construct?(args: readonly unknown[]): unknown;
}

export interface PickleHooks {
  /** Returns the object for `module.name`, or throws (PickleRefusedError) when it is not allowed. */
  findGlobal(module: string, name: string): PickleGlobal;
  /** BINPERSID / PERSID. Without it, persistent ids are refused. */
  persistentLoad?(pid: unknown): unknown;
  /** BUILD: sets `state` on `obj` (returns nothing). Without it, BUILD is refused. */
  build?(obj: unknown, state: unknown): void;
}

export interface PickleLimits {
  /** Largest number of memo entries. */
  maxMemo: number;
  /** Largest number of values on the stack (all marks together). */
  maxStack: number;
  /** Deepest MARK nesting. */
  maxMarkDepth: number;
  /** Longest single string or bytes value, in bytes. */
  maxStringBytes: number;
}

// A torch.save state dict memoizes a handful of objects per tensor (~50 000 for 10 000 tensors):
// 2^20 leaves room while a hostile stream of MEMOIZE ops is refused after ~60 MB, not ~1 GB.
export const defaultPickleLimits: PickleLimits = {
  maxMemo: 1 << 20,
  maxStack: 1 << 20,
  maxMarkDepth: 10_000,
  maxStringBytes: 256 * 1024 * 1024,
};

export class PickleError extends Error {
  override name = 'PickleError';
}

/** A pickle asked for a global that is not on the allow-list. */
export class PickleRefusedError extends PickleError {
  override name = 'PickleRefusedError';
  constructor(
    readonly global: string,
    detail = '',
  ) {
    super(`refused pickle global '${global}'${detail ? ` (${detail})` : ''}`);
  }
}

/** A Python dict (also OrderedDict); `attributes` keeps what BUILD set on it, if anything. */
export class PickleDict extends Map<unknown, unknown> {
  attributes: unknown = undefined;
}

export function unpickle(data: Uint8Array, hooks: PickleHooks, limits: Partial<PickleLimits> = {}): unknown {
  return new Unpickler(data, hooks, { ...defaultPickleLimits, ...limits }).run();
}

class Unpickler {
  private pos = 0;
  private readonly view: DataView;
  private readonly stack: unknown[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true });

  constructor(
    private readonly data: Uint8Array,
    private readonly hooks: PickleHooks,
    private readonly limits: PickleLimits,
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  run(): unknown {
    for (;;) {
      const at = this.pos;
      const op = this.u8();
      switch (op) {
        case 0x80: {
          // PROTO
          const proto = this.u8();
          if (proto > 5) this.fail(at, `unsupported pickle protocol ${proto}`);
          break;
        }
        case 0x95: // FRAME: framing is only a hint for buffered readers.
          this.take(8);
          break;
        case 0x2e: {
          // STOP
          if (this.marks.length) this.fail(at, 'STOP inside an open MARK');
          if (this.stack.length !== 1) this.fail(at, `STOP with ${this.stack.length} values on the stack (expected 1)`);
          return this.stack.pop();
        }
        case 0x28: // MARK
          if (this.marks.length >= this.limits.maxMarkDepth)
            this.fail(at, `MARK nesting deeper than ${this.limits.maxMarkDepth}`);
          this.marks.push(this.stack.length);
          break;
        case 0x30: // POP
          this.pop(at);
          break;
        case 0x31: // POP_MARK
          this.popMark(at);
          break;
        case 0x32: {
          // DUP
          const v = this.pop(at);
          this.push(at, v);
          this.push(at, v);
          break;
        }
        case 0x4e:
          this.push(at, null);
          break; // NONE
        case 0x88:
          this.push(at, true);
          break; // NEWTRUE
        case 0x89:
          this.push(at, false);
          break; // NEWFALSE
        case 0x4a:
          this.push(at, this.view.getInt32(this.take(4), true));
          break; // BININT
        case 0x4b:
          this.push(at, this.u8());
          break; // BININT1
        case 0x4d:
          this.push(at, this.view.getUint16(this.take(2), true));
          break; // BININT2
        case 0x8a:
          this.push(at, this.long(this.u8()));
          break; // LONG1
        case 0x8b: {
          // LONG4
          const n = this.view.getInt32(this.take(4), true);
          if (n < 0) this.fail(at, 'LONG4 with a negative length');
          this.push(at, this.long(n));
          break;
        }
        case 0x49: {
          // INT (text); "00"/"01" are protocol 0's False/True
          const line = this.line(at);
          if (line === '00') this.push(at, false);
          else if (line === '01') this.push(at, true);
          else this.push(at, this.parseInt(at, line));
          break;
        }
        case 0x4c: {
          // LONG (text)
          const line = this.line(at);
          this.push(at, this.parseInt(at, line.endsWith('L') ? line.slice(0, -1) : line));
          break;
        }
        case 0x47:
          this.push(at, this.view.getFloat64(this.take(8), false));
          break; // BINFLOAT (big-endian)
        case 0x46: {
          // FLOAT (text)
          const line = this.line(at);
          const v = Number(line);
          if (line.trim() === '' || (Number.isNaN(v) && !/^[-+]?nan$/i.test(line)))
            this.fail(at, `bad FLOAT '${line}'`);
          this.push(at, v);
          break;
        }
        case 0x58:
          this.push(at, this.str(at, this.view.getUint32(this.take(4), true)));
          break; // BINUNICODE
        case 0x8c:
          this.push(at, this.str(at, this.u8()));
          break; // SHORT_BINUNICODE
        case 0x8d:
          this.push(at, this.str(at, this.u64(at)));
          break; // BINUNICODE8
        case 0x54: {
          // BINSTRING (Python 2 str): bytes read as latin-1
          const n = this.view.getInt32(this.take(4), true);
          if (n < 0) this.fail(at, 'BINSTRING with a negative length');
          this.push(at, latin1(this.bytes(at, n)));
          break;
        }
        case 0x55:
          this.push(at, latin1(this.bytes(at, this.u8())));
          break; // SHORT_BINSTRING
        case 0x42:
          this.push(at, this.bytes(at, this.view.getUint32(this.take(4), true)).slice());
          break; // BINBYTES
        case 0x43:
          this.push(at, this.bytes(at, this.u8()).slice());
          break; // SHORT_BINBYTES
        case 0x8e:
          this.push(at, this.bytes(at, this.u64(at)).slice());
          break; // BINBYTES8
        case 0x96:
          this.push(at, this.bytes(at, this.u64(at)).slice());
          break; // BYTEARRAY8
        case 0x7d:
          this.push(at, new PickleDict());
          break; // EMPTY_DICT
        case 0x64: {
          // DICT
          const items = this.popMark(at);
          if (items.length % 2) this.fail(at, 'DICT with an odd number of items');
          const d = new PickleDict();
          for (let i = 0; i < items.length; i += 2) d.set(this.key(at, items[i]), items[i + 1]);
          this.push(at, d);
          break;
        }
        case 0x73: {
          // SETITEM
          const value = this.pop(at);
          const key = this.pop(at);
          this.dictAt(at).set(this.key(at, key), value);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = this.popMark(at);
          if (items.length % 2) this.fail(at, 'SETITEMS with an odd number of items');
          const d = this.dictAt(at);
          for (let i = 0; i < items.length; i += 2) d.set(this.key(at, items[i]), items[i + 1]);
          break;
        }
        case 0x5d:
          this.push(at, []);
          break; // EMPTY_LIST
        case 0x6c:
          this.push(at, this.popMark(at));
          break; // LIST
        case 0x61: {
          // APPEND
          const v = this.pop(at);
          this.listAt(at).push(v);
          break;
        }
        case 0x65: {
          // APPENDS
          const items = this.popMark(at);
          const list = this.listAt(at);
          for (const v of items) list.push(v);
          break;
        }
        case 0x29:
          this.push(at, Object.freeze([]));
          break; // EMPTY_TUPLE
        case 0x74:
          this.push(at, Object.freeze(this.popMark(at)));
          break; // TUPLE
        case 0x85: {
          // TUPLE1
          const a = this.pop(at);
          this.push(at, Object.freeze([a]));
          break;
        }
        case 0x86: {
          // TUPLE2
          const b = this.pop(at);
          const a = this.pop(at);
          this.push(at, Object.freeze([a, b]));
          break;
        }
        case 0x87: {
          // TUPLE3
          const c = this.pop(at);
          const b = this.pop(at);
          const a = this.pop(at);
          this.push(at, Object.freeze([a, b, c]));
          break;
        }
        case 0x8f:
          this.push(at, new Set());
          break; // EMPTY_SET
        case 0x90: {
          // ADDITEMS
          const items = this.popMark(at);
          const s = this.top(at);
          if (!(s instanceof Set)) this.fail(at, 'ADDITEMS on a value that is not a set');
          for (const v of items) s.add(this.key(at, v));
          break;
        }
        case 0x91:
          this.push(at, new Set(this.popMark(at).map((v) => this.key(at, v))));
          break; // FROZENSET
        case 0x63: {
          // GLOBAL
          const module = this.line(at);
          const name = this.line(at);
          this.push(at, this.global(module, name));
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const name = this.pop(at);
          const module = this.pop(at);
          if (typeof module !== 'string' || typeof name !== 'string') this.fail(at, 'STACK_GLOBAL needs two strings');
          this.push(at, this.global(module, name));
          break;
        }
        case 0x52: {
          // REDUCE
          const args = this.pop(at);
          const f = this.pop(at);
          const g = this.asGlobal(at, f, 'REDUCE');
          if (!Array.isArray(args)) this.fail(at, `REDUCE of '${g.qualifiedName}' with arguments that are not a tuple`);
          if (!g.call) this.fail(at, `'${g.qualifiedName}' cannot be called`);
          this.push(at, g.call(args));
          break;
        }
        case 0x81: {
          // NEWOBJ
          const args = this.pop(at);
          const cls = this.pop(at);
          const g = this.asGlobal(at, cls, 'NEWOBJ');
          if (!Array.isArray(args)) this.fail(at, `NEWOBJ of '${g.qualifiedName}' with arguments that are not a tuple`);
          if (!g.construct) this.fail(at, `'${g.qualifiedName}' cannot be instantiated by NEWOBJ`);
          this.push(at, g.construct(args));
          break;
        }
        case 0x92: {
          // NEWOBJ_EX
          const kwargs = this.pop(at);
          const args = this.pop(at);
          const cls = this.pop(at);
          const g = this.asGlobal(at, cls, 'NEWOBJ_EX');
          if (!Array.isArray(args))
            this.fail(at, `NEWOBJ_EX of '${g.qualifiedName}' with arguments that are not a tuple`);
          if (!(kwargs instanceof Map) || kwargs.size)
            this.fail(at, `NEWOBJ_EX of '${g.qualifiedName}' with keyword arguments`);
          if (!g.construct) this.fail(at, `'${g.qualifiedName}' cannot be instantiated by NEWOBJ_EX`);
          this.push(at, g.construct(args));
          break;
        }
        case 0x62: {
          // BUILD
          const state = this.pop(at);
          const obj = this.top(at);
          if (!this.hooks.build) this.fail(at, 'BUILD is not allowed here');
          this.hooks.build(obj, state);
          break;
        }
        case 0x51: {
          // BINPERSID
          const pid = this.pop(at);
          this.push(at, this.persistent(at, pid));
          break;
        }
        case 0x50:
          this.push(at, this.persistent(at, this.line(at)));
          break; // PERSID
        case 0x71:
          this.put(at, this.u8());
          break; // BINPUT
        case 0x72:
          this.put(at, this.view.getUint32(this.take(4), true));
          break; // LONG_BINPUT
        case 0x94:
          this.put(at, this.memo.size);
          break; // MEMOIZE
        case 0x70:
          this.put(at, this.memoIndex(at, this.line(at)));
          break; // PUT
        case 0x68:
          this.get(at, this.u8());
          break; // BINGET
        case 0x6a:
          this.get(at, this.view.getUint32(this.take(4), true));
          break; // LONG_BINGET
        case 0x67:
          this.get(at, this.memoIndex(at, this.line(at)));
          break; // GET
        default:
          this.fail(at, `unsupported pickle opcode ${opName(op)}`);
      }
    }
  }

  private global(module: string, name: string): PickleGlobal {
    return this.hooks.findGlobal(module, name);
  }

  private asGlobal(at: number, f: unknown, op: string): PickleGlobal {
    if (typeof f === 'object' && f !== null && 'qualifiedName' in f) return f as PickleGlobal;
    this.fail(at, `${op} of a value that is not an allowed global (${describe(f)})`);
  }

  private persistent(at: number, pid: unknown): unknown {
    if (!this.hooks.persistentLoad) this.fail(at, 'persistent ids are not allowed here');
    return this.hooks.persistentLoad(pid);
  }

  private put(at: number, index: number): void {
    if (!this.memo.has(index) && this.memo.size >= this.limits.maxMemo)
      this.fail(at, `more than ${this.limits.maxMemo} memo entries`);
    this.memo.set(index, this.top(at));
  }

  private get(at: number, index: number): void {
    if (!this.memo.has(index)) this.fail(at, `memo entry ${index} is not defined`);
    this.push(at, this.memo.get(index));
  }

  private memoIndex(at: number, line: string): number {
    const v = Number(line);
    if (!/^\d+$/.test(line) || !Number.isSafeInteger(v)) this.fail(at, `bad memo index '${line}'`);
    return v;
  }

  private push(at: number, v: unknown): void {
    if (this.stack.length >= this.limits.maxStack)
      this.fail(at, `more than ${this.limits.maxStack} values on the stack`);
    this.stack.push(v);
  }

  private pop(at: number): unknown {
    const floor = this.marks.length ? this.marks[this.marks.length - 1]! : 0;
    if (this.stack.length <= floor) this.fail(at, 'stack underflow');
    return this.stack.pop();
  }

  private top(at: number): unknown {
    const floor = this.marks.length ? this.marks[this.marks.length - 1]! : 0;
    if (this.stack.length <= floor) this.fail(at, 'stack underflow');
    return this.stack[this.stack.length - 1];
  }

  private popMark(at: number): unknown[] {
    const m = this.marks.pop();
    if (m === undefined) this.fail(at, 'no MARK to pop to');
    return this.stack.splice(m);
  }

  private dictAt(at: number): PickleDict {
    const d = this.top(at);
    if (!(d instanceof PickleDict)) this.fail(at, `SETITEM(S) on a value that is not a dict (${describe(d)})`);
    return d;
  }

  private listAt(at: number): unknown[] {
    const l = this.top(at);
    if (!Array.isArray(l) || Object.isFrozen(l))
      this.fail(at, `APPEND(S) on a value that is not a list (${describe(l)})`);
    return l;
  }

  /** Python refuses unhashable keys; so do we, which also keeps Map identity semantics honest. */
  private key(at: number, k: unknown): unknown {
    if (k instanceof Map || k instanceof Set || (Array.isArray(k) && !Object.isFrozen(k))) {
      this.fail(at, `unhashable dict key or set item (${describe(k)})`);
    }
    return k;
  }

  private u8(): number {
    if (this.pos >= this.data.byteLength)
      throw new PickleError(`pickle data ends at byte ${this.pos} without STOP (truncated?)`);
    return this.data[this.pos++]!;
  }

  /** Advances past n bytes and returns where they start. */
  private take(n: number): number {
    if (this.pos + n > this.data.byteLength) {
      throw new PickleError(
        `pickle data ends at byte ${this.data.byteLength}, ${n} bytes needed at ${this.pos} (truncated?)`,
      );
    }
    const p = this.pos;
    this.pos += n;
    return p;
  }

  private u64(at: number): number {
    const v = this.view.getBigUint64(this.take(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(at, `length ${v} is out of range`);
    return Number(v);
  }

  private bytes(at: number, n: number): Uint8Array {
    if (n > this.limits.maxStringBytes)
      this.fail(at, `string of ${n} bytes is longer than the ${this.limits.maxStringBytes} allowed`);
    const p = this.take(n);
    return this.data.subarray(p, p + n);
  }

  private str(at: number, n: number): string {
    const b = this.bytes(at, n);
    try {
      return this.utf8.decode(b);
    } catch {
      this.fail(at, 'string is not valid UTF-8');
    }
  }

  private line(at: number): string {
    const end = this.data.indexOf(0x0a, this.pos);
    if (end < 0) this.fail(at, 'text argument without a newline (truncated?)');
    if (end - this.pos > 4096) this.fail(at, 'text argument longer than 4096 bytes');
    const s = latin1(this.data.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }

  private long(n: number): number | bigint {
    const p = this.take(n);
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.data[p + i]!);
    if (this.data[p + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return toNumberIfSafe(v);
  }

  private parseInt(at: number, s: string): number | bigint {
    if (!/^[-+]?\d+$/.test(s)) this.fail(at, `bad integer '${s}'`);
    return toNumberIfSafe(BigInt(s));
  }

  private fail(at: number, message: string): never {
    throw new PickleError(`pickle byte ${at}: ${message}`);
  }
}

function toNumberIfSafe(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

function opName(op: number): string {
  const known: Record<number, string> = {
    105: 'INST',
    111: 'OBJ',
    130: 'EXT1',
    131: 'EXT2',
    132: 'EXT4',
    151: 'NEXT_BUFFER',
    152: 'READONLY_BUFFER',
    83: 'STRING',
    86: 'UNICODE',
  };
  const hex = `0x${op.toString(16).padStart(2, '0')}`;
  return known[op] ? `${known[op]} (${hex})` : hex;
}

/** A short description of a value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return Object.isFrozen(v) ? `tuple of ${v.length}` : `list of ${v.length}`;
  if (v instanceof Map) return `dict of ${v.size}`;
  if (v instanceof Set) return `set of ${v.size}`;
  if (v instanceof Uint8Array) return `bytes of ${v.byteLength}`;
  if (typeof v === 'object' && 'qualifiedName' in v) return `'${(v as PickleGlobal).qualifiedName}'`;
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v === 'string' ? `str '${v.length > 40 ? `${v.slice(0, 40)}...` : v}'` : `${typeof v} ${String(v)}`;
}
