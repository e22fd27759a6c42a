/**
 * The on-disk prompt cache (Node): prompt vectors kept across processes, so that a restart does
 * not encode a vocabulary again. One folder per model key (a sha256 of the model's files), holding
 * shard files that are written whole (temporary file, then rename: concurrent writers never see
 * or leave half a file) and never changed. A shard:
 *
 *   header, 64 bytes: "APEPROMP", u32 version (1), dim, count, dtype (1 = float32), text bytes,
 *                     crc32 of the index and texts, then the 32-byte model key
 *   index:  count x (u32 text length in bytes, u32 crc32 of the row)
 *   texts:  the texts, UTF-8, back to back
 *   rows:   count x dim float32, little-endian
 *
 * Opening reads headers, indexes and texts only (sizes checked against the file's length before
 * anything is allocated); a row is read when asked for and checked against its crc. A file that
 * fails a check is reported once and left out; nothing here throws on bad data. Past the size cap
 * the oldest shards are removed; `clearPromptStore` removes a model's folder.
 */
import {
  closeSync,
  mkdirSync,
  openSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { accessSync, constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { PromptVectorStore } from '../text/prompt-embeddings.js';

const MAGIC = 'APEPROMP';
const VERSION = 1;
const HEADER = 64;
const FLOAT32 = 1;
const SHARD_SUFFIX = '.apeprompts';
/** Default size cap of one model's folder. */
export const DEFAULT_PROMPT_STORE_BYTES = 2 * 1024 ** 3;
/** More shards than this are merged into one when the next is written. */
const MAX_SHARDS = 32;

export interface PromptStoreOptions {
  /** Size cap of the model's folder in bytes (default DEFAULT_PROMPT_STORE_BYTES); the oldest shards go first. */
  maxBytes?: number;
  /** Told about files that are left out (corrupt, other model, unreadable); default console.warn. */
  onWarning?: (message: string) => void;
}

interface Row {
  file: string;
  offset: number;
  crc: number;
}

/**
 * The folder for a model's prompt cache: MODEL/prompt-cache when the model folder is writable,
 * else APE_HOME/prompt-cache (~/.cache/ape by default).
 */
export function promptStoreRoot(modelDir: string, home: string): string {
  try {
    accessSync(modelDir, constants.W_OK);
    return join(modelDir, 'prompt-cache');
  } catch {
    return join(home, 'prompt-cache');
  }
}

/** Removes the cached prompt vectors of one model key (or of every model, without a key) under `root`. */
export function clearPromptStore(root: string, key?: string): void {
  rmSync(key === undefined ? root : join(root, key), { recursive: true, force: true });
}

export class PromptFileStore implements PromptVectorStore {
  private readonly rows = new Map<string, Row>();
  private readonly dir: string;
  private readonly keyBytes: Uint8Array;
  private readonly warn: (message: string) => void;
  private readonly warned = new Set<string>();
  private written = 0;

  /** `key`: 64 hex digits (sha256 of the model's files); `dim`: the vector width. */
  constructor(
    root: string,
    readonly key: string,
    readonly dim: number,
    private readonly options: PromptStoreOptions = {},
  ) {
    if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`PromptFileStore: key must be 64 hex digits, got '${key}'`);
    this.dir = join(root, key);
    this.keyBytes = Buffer.from(key, 'hex');
    this.warn = options.onWarning ?? ((m) => console.warn(m));
    for (const file of this.shards()) this.index(file);
  }

  get size(): number {
    return this.rows.size;
  }

  /** The vectors stored for those of `texts` that have one. */
  get(texts: readonly string[]): Map<string, Float32Array> {
    const found = new Map<string, Float32Array>();
    const byFile = new Map<string, [string, Row][]>();
    for (const t of texts) {
      const row = this.rows.get(t);
      if (!row || found.has(t)) continue;
      const list = byFile.get(row.file) ?? [];
      list.push([t, row]);
      byFile.set(row.file, list);
    }
    const bytes = this.dim * 4;
    for (const [file, list] of byFile) {
      let fd: number;
      try {
        fd = openSync(join(this.dir, file), 'r');
      } catch {
        // Removed by another process (eviction, clear): those prompts are encoded again.
        for (const [t] of list) this.rows.delete(t);
        continue;
      }
      try {
        list.sort((a, b) => a[1].offset - b[1].offset);
        const buffer = Buffer.alloc(bytes);
        for (const [t, row] of list) {
          if (readSync(fd, buffer, 0, bytes, row.offset) !== bytes || crc32(buffer) !== row.crc) {
            this.report(file, `a row fails its check (text ${JSON.stringify(t.slice(0, 40))})`);
            this.rows.delete(t);
            continue;
          }
          found.set(t, new Float32Array(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + bytes)));
        }
      } finally {
        closeSync(fd);
      }
    }
    return found;
  }

  /** Stores new vectors as one shard (texts already stored are skipped). */
  put(entries: ReadonlyMap<string, Float32Array>): void {
    const fresh = [...entries].filter(([t, v]) => !this.rows.has(t) && v.length === this.dim);
    if (fresh.length === 0) return;
    try {
      mkdirSync(this.dir, { recursive: true });
      const shards = this.shards();
      if (shards.length >= MAX_SHARDS) {
        // Merge: every stored row goes into the new shard with the fresh ones.
        const old = this.get([...this.rows.keys()]);
        fresh.unshift(...[...old].filter(([t]) => !entries.has(t)));
        this.writeShard(fresh);
        for (const file of shards) this.remove(file);
      } else {
        this.writeShard(fresh);
      }
      this.evict();
    } catch (e) {
      this.report(this.dir, `cannot write (${(e as Error).message}); prompts stay cached in memory only`);
    }
  }

  /** Shard names, oldest first (names start with the time they were written). */
  private shards(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    return names.filter((n) => n.endsWith(SHARD_SUFFIX)).sort();
  }

  private writeShard(list: [string, Float32Array][]): void {
    const texts = list.map(([t]) => Buffer.from(t, 'utf8'));
    const textBytes = texts.reduce((a, b) => a + b.length, 0);
    const count = list.length;
    const rowBytes = this.dim * 4;
    const indexStart = HEADER;
    const textStart = indexStart + count * 8;
    const rowStart = textStart + textBytes;
    const out = Buffer.alloc(rowStart + count * rowBytes);
    list.forEach(([, v], i) => {
      const row = Buffer.from(v.buffer, v.byteOffset, rowBytes);
      row.copy(out, rowStart + i * rowBytes);
      out.writeUInt32LE(texts[i]!.length, indexStart + i * 8);
      out.writeUInt32LE(crc32(row), indexStart + i * 8 + 4);
    });
    let at = textStart;
    for (const t of texts) at += t.copy(out, at);
    out.write(MAGIC, 0, 'latin1');
    out.writeUInt32LE(VERSION, 8);
    out.writeUInt32LE(this.dim, 12);
    out.writeUInt32LE(count, 16);
    out.writeUInt32LE(FLOAT32, 20);
    out.writeUInt32LE(textBytes, 24);
    out.writeUInt32LE(crc32(out.subarray(indexStart, rowStart)), 28);
    Buffer.from(this.keyBytes).copy(out, 32);
    // Names sort by age: the time, then this store's own count (several writes in one millisecond).
    this.written += 1;
    const name = `${Date.now().toString().padStart(15, '0')}-${String(this.written).padStart(6, '0')}-${process.pid}-${randomBytes(4).toString('hex')}${SHARD_SUFFIX}`;
    const temp = join(this.dir, `.${name}.tmp`);
    const fd = openSync(temp, 'w');
    try {
      let done = 0;
      while (done < out.length) done += writeSync(fd, out, done, out.length - done, done);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, join(this.dir, name));
    this.index(name);
  }

  /** Reads a shard's header, index and texts into `rows`; a file that fails a check is reported and left out. */
  private index(file: string): void {
    const path = join(this.dir, file);
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      this.report(file, `cannot be opened (${(e as Error).message})`);
      return;
    }
    try {
      const problem = this.readIndex(file, path, fd);
      if (problem) this.report(file, problem);
    } finally {
      closeSync(fd);
    }
  }

  /** The indexing of one open shard: null, or what is wrong with it. */
  private readIndex(file: string, path: string, fd: number): string | null {
    const size = statSync(path).size;
    const header = Buffer.alloc(HEADER);
    if (size < HEADER || readSync(fd, header, 0, HEADER, 0) !== HEADER) return 'is truncated';
    if (header.toString('latin1', 0, 8) !== MAGIC) return 'is not a prompt cache file';
    const version = header.readUInt32LE(8);
    const dim = header.readUInt32LE(12);
    const count = header.readUInt32LE(16);
    const dtype = header.readUInt32LE(20);
    const textBytes = header.readUInt32LE(24);
    if (version !== VERSION || dtype !== FLOAT32)
      return `has version ${version} / dtype ${dtype} (expected ${VERSION} / ${FLOAT32})`;
    if (!header.subarray(32, 64).equals(this.keyBytes)) return 'belongs to another model';
    if (dim !== this.dim) return `has vectors of ${dim} values, the model makes ${this.dim}`;
    const rowStart = HEADER + count * 8 + textBytes;
    // Checked before anything is allocated: the header's counts must add up to the file's length.
    if (rowStart + count * dim * 4 !== size)
      return `is ${size} bytes, its header describes ${rowStart + count * dim * 4}`;
    const meta = Buffer.alloc(count * 8 + textBytes);
    if (readSync(fd, meta, 0, meta.length, HEADER) !== meta.length || crc32(meta) !== header.readUInt32LE(28))
      return 'has a damaged index';
    let at = count * 8;
    for (let i = 0; i < count; i++) {
      const length = meta.readUInt32LE(i * 8);
      if (at + length > meta.length) return 'has a damaged index';
      const text = meta.toString('utf8', at, at + length);
      at += length;
      this.rows.set(text, { file, offset: rowStart + i * dim * 4, crc: meta.readUInt32LE(i * 8 + 4) });
    }
    return null;
  }

  /** Removes the oldest shards while the folder is over its size cap. */
  private evict(): void {
    const max = this.options.maxBytes ?? DEFAULT_PROMPT_STORE_BYTES;
    const shards = this.shards().map((name) => {
      try {
        return { name, bytes: statSync(join(this.dir, name)).size };
      } catch {
        return { name, bytes: 0 };
      }
    });
    let total = shards.reduce((a, s) => a + s.bytes, 0);
    // The newest shard always stays.
    for (const s of shards.slice(0, -1)) {
      if (total <= max) break;
      this.remove(s.name);
      total -= s.bytes;
    }
  }

  private remove(file: string): void {
    try {
      unlinkSync(join(this.dir, file));
    } catch {
      // Already removed by another process.
    }
    for (const [t, row] of this.rows) if (row.file === file) this.rows.delete(t);
  }

  private report(file: string, problem: string): void {
    if (this.warned.has(file)) return;
    this.warned.add(file);
    this.warn(`prompt cache: ${join(this.dir, file)} ${problem}; left out (its prompts are encoded again)`);
  }
}
