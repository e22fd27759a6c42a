import { open, type FileHandle } from 'node:fs/promises';
import { crc32, inflateRawSync } from 'node:zlib';

/**
 * A read-only view of a zip archive on disk that never loads the whole file: the central
 * directory is read once (zip64 included, for archives and entries past 4 GB), then entries or
 * byte ranges of entries are read on demand from the file descriptor. `torch.save` writes its
 * entries stored (uncompressed, 64-byte aligned), so a byte range of a stored entry is a plain
 * `pread`. Deflated entries are inflated whole, bounded by their declared size.
 */
export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate; anything else is refused when read. */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  /** Offset of the local file header. */
  headerOffset: number;
}

export class ZipFormatError extends Error {
  override name = 'ZipFormatError';
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;
/** Reads are split so that no single `read` call asks for more than this. */
const READ_CHUNK = 64 * 1024 * 1024;

export interface ZipLimits {
  /** Largest central directory accepted, in bytes. */
  maxCentralDirectoryBytes: number;
  /** Largest number of entries accepted. */
  maxEntries: number;
  /**
   * Largest ratio of a deflated entry's size to its compressed size. Deflate can reach ~1032:1,
   * so without it a file of a few hundred KB could make the reader allocate hundreds of MB;
   * torch writes its entries stored, and real data rarely compresses past 10:1.
   */
  maxInflateRatio: number;
}

const defaultLimits: ZipLimits = {
  maxCentralDirectoryBytes: 256 * 1024 * 1024,
  maxEntries: 4_000_000,
  maxInflateRatio: 100,
};
/** Entries this small may inflate past the ratio (an all-zero few KB is legitimately tiny packed). */
const SMALL_ENTRY_BYTES = 64 * 1024;

export class ZipArchive {
  private readonly dataOffsets = new Map<string, number>();

  private constructor(
    readonly path: string,
    private readonly file: FileHandle,
    readonly fileSize: number,
    readonly entries: ReadonlyMap<string, ZipEntry>,
    private readonly limits: ZipLimits,
  ) {}

  static async open(path: string, limits: Partial<ZipLimits> = {}): Promise<ZipArchive> {
    const lim = { ...defaultLimits, ...limits };
    const file = await open(path, 'r');
    try {
      const fileSize = (await file.stat()).size;
      const entries = await readCentralDirectory(path, file, fileSize, lim);
      return new ZipArchive(path, file, fileSize, entries, lim);
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.file.close();
  }

  entry(name: string): ZipEntry {
    const e = this.entries.get(name);
    if (!e) throw new ZipFormatError(`${this.path}: no entry '${name}' in the zip archive`);
    return e;
  }

  /** The whole (decompressed) content of an entry; `maxBytes` bounds what may be allocated. */
  async read(name: string, maxBytes: number): Promise<Uint8Array> {
    const e = this.entry(name);
    if (e.size > maxBytes) {
      throw new ZipFormatError(`${this.path}: entry '${name}' is ${e.size} bytes, more than the ${maxBytes} allowed`);
    }
    const start = await this.dataOffset(e);
    let out: Uint8Array;
    if (e.method === 0) {
      out = new Uint8Array(e.size);
      await this.readAt(out, start);
    } else {
      out = await this.inflate(e, start);
    }
    this.checkCrc(e, out);
    return out;
  }

  /**
   * Reads `into.byteLength` bytes of an entry's content starting at `offset` within it. A stored
   * entry is read straight from the file; the CRC is checked when the range is the whole entry.
   */
  async readRange(name: string, offset: number, into: Uint8Array): Promise<void> {
    const e = this.entry(name);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + into.byteLength > e.size) {
      throw new ZipFormatError(
        `${this.path}: range [${offset}, ${offset + into.byteLength}) is outside entry '${name}' (${e.size} bytes)`,
      );
    }
    const start = await this.dataOffset(e);
    if (e.method === 0) {
      await this.readAt(into, start + offset);
      if (offset === 0 && into.byteLength === e.size) this.checkCrc(e, into);
      return;
    }
    const whole = await this.inflate(e, start);
    this.checkCrc(e, whole);
    into.set(whole.subarray(offset, offset + into.byteLength));
  }

  /**
   * Reads `length` bytes of an entry from `offset` through `buffer`, chunk by chunk, handing each
   * chunk (a view of `buffer`, valid until the callback returns) and its position within the range
   * to `onChunk`. The CRC is checked when the range is the whole entry.
   */
  async readChunks(
    name: string,
    offset: number,
    length: number,
    buffer: Uint8Array,
    onChunk: (chunk: Uint8Array, at: number) => void,
  ): Promise<void> {
    const e = this.entry(name);
    if (
      !Number.isSafeInteger(offset) ||
      offset < 0 ||
      !Number.isSafeInteger(length) ||
      length < 0 ||
      offset + length > e.size
    ) {
      throw new ZipFormatError(
        `${this.path}: range [${offset}, ${offset + length}) is outside entry '${name}' (${e.size} bytes)`,
      );
    }
    if (buffer.byteLength === 0 && length > 0) throw new Error('ZipArchive.readChunks: empty buffer');
    if (e.method !== 0) {
      const whole = await this.inflate(e, await this.dataOffset(e));
      this.checkCrc(e, whole);
      for (let at = 0; at < length; at += buffer.byteLength) {
        const n = Math.min(buffer.byteLength, length - at);
        buffer.set(whole.subarray(offset + at, offset + at + n));
        onChunk(buffer.subarray(0, n), at);
      }
      return;
    }
    const start = await this.dataOffset(e);
    const whole = offset === 0 && length === e.size;
    let crc = 0;
    for (let at = 0; at < length; at += buffer.byteLength) {
      const chunk = buffer.subarray(0, Math.min(buffer.byteLength, length - at));
      await this.readAt(chunk, start + offset + at);
      if (whole) crc = crc32(chunk, crc);
      onChunk(chunk, at);
    }
    if (whole && e.crc32 !== 0 && length > 0 && crc >>> 0 !== e.crc32) {
      throw new ZipFormatError(
        `${this.path}: entry '${e.name}' is corrupt (CRC-32 ${hex(crc >>> 0)}, the directory says ${hex(e.crc32)})`,
      );
    }
  }

  private async inflate(e: ZipEntry, start: number): Promise<Uint8Array> {
    if (e.method !== 8) {
      throw new ZipFormatError(
        `${this.path}: entry '${e.name}' uses compression method ${e.method}; only stored (0) and deflate (8) are supported`,
      );
    }
    if (e.size > SMALL_ENTRY_BYTES && e.size > e.compressedSize * this.limits.maxInflateRatio) {
      throw new ZipFormatError(
        `${this.path}: entry '${e.name}' would inflate ${e.compressedSize} bytes to ${e.size}, more than ${this.limits.maxInflateRatio} times (a zip bomb?); not inflated`,
      );
    }
    const packed = new Uint8Array(e.compressedSize);
    await this.readAt(packed, start);
    let out: Buffer;
    try {
      out = inflateRawSync(packed, { maxOutputLength: Math.max(e.size, 1) });
    } catch (err) {
      throw new ZipFormatError(`${this.path}: entry '${e.name}' does not inflate: ${(err as Error).message}`);
    }
    if (out.byteLength !== e.size) {
      throw new ZipFormatError(
        `${this.path}: entry '${e.name}' inflates to ${out.byteLength} bytes, the directory says ${e.size}`,
      );
    }
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }

  private checkCrc(e: ZipEntry, data: Uint8Array): void {
    // Writers that skip the checksum (torch can be told to) leave 0 there.
    if (e.crc32 === 0 || data.byteLength === 0) return;
    const got = crc32(data) >>> 0;
    if (got !== e.crc32) {
      throw new ZipFormatError(
        `${this.path}: entry '${e.name}' is corrupt (CRC-32 ${hex(got)}, the directory says ${hex(e.crc32)})`,
      );
    }
  }

  /** Where an entry's bytes begin: after its local header, whose name/extra lengths may differ from the central ones. */
  private async dataOffset(e: ZipEntry): Promise<number> {
    const known = this.dataOffsets.get(e.name);
    if (known !== undefined) return known;
    const header = new Uint8Array(30);
    if (e.headerOffset + 30 > this.fileSize) {
      throw new ZipFormatError(
        `${this.path}: local header of '${e.name}' at ${e.headerOffset} is past the end of the file (${this.fileSize} bytes)`,
      );
    }
    await this.readAt(header, e.headerOffset);
    const view = new DataView(header.buffer);
    if (view.getUint32(0, true) !== LOCAL_SIG) {
      throw new ZipFormatError(`${this.path}: no local file header for '${e.name}' at offset ${e.headerOffset}`);
    }
    const start = e.headerOffset + 30 + view.getUint16(26, true) + view.getUint16(28, true);
    if (start + e.compressedSize > this.fileSize) {
      throw new ZipFormatError(
        `${this.path}: entry '${e.name}' claims ${e.compressedSize} bytes at offset ${start}, past the end of the file (${this.fileSize} bytes; truncated?)`,
      );
    }
    this.dataOffsets.set(e.name, start);
    return start;
  }

  private async readAt(into: Uint8Array, position: number): Promise<void> {
    await readFully(this.path, this.file, into, position);
  }
}

async function readFully(path: string, file: FileHandle, into: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    const want = Math.min(READ_CHUNK, into.byteLength - done);
    const { bytesRead } = await file.read(into, done, want, position + done);
    if (bytesRead === 0) {
      throw new ZipFormatError(`${path}: unexpected end of file at offset ${position + done} (truncated?)`);
    }
    done += bytesRead;
  }
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

async function readCentralDirectory(
  path: string,
  file: FileHandle,
  fileSize: number,
  limits: ZipLimits,
): Promise<Map<string, ZipEntry>> {
  if (fileSize < EOCD_SIZE) throw new ZipFormatError(`${path}: ${fileSize} bytes is too small to be a zip archive`);
  const tailSize = Math.min(fileSize, EOCD_SIZE + MAX_COMMENT + 20);
  const tail = new Uint8Array(tailSize);
  await readFully(path, file, tail, fileSize - tailSize);
  const tv = new DataView(tail.buffer);
  let eocd = -1;
  for (let i = tailSize - EOCD_SIZE; i >= 0; i--) {
    if (tv.getUint32(i, true) === EOCD_SIG && i + EOCD_SIZE + tv.getUint16(i + 20, true) <= tailSize) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new ZipFormatError(
      `${path}: not a zip archive (no end-of-central-directory record; truncated, or a legacy pre-1.6 torch.save file?)`,
    );
  }
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  if (tv.getUint16(eocd + 4, true) !== 0 || tv.getUint16(eocd + 6, true) !== 0) {
    throw new ZipFormatError(`${path}: multi-disk zip archives are not supported`);
  }
  const needsZip64 = count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff;
  const locatorAt = eocd - 20;
  if (locatorAt >= 0 && tv.getUint32(locatorAt, true) === ZIP64_LOCATOR_SIG) {
    const recordOffset = Number(tv.getBigUint64(locatorAt + 8, true));
    if (recordOffset + 56 > fileSize) {
      throw new ZipFormatError(
        `${path}: zip64 end-of-central-directory at ${recordOffset} is outside the file (${fileSize} bytes)`,
      );
    }
    const rec = new Uint8Array(56);
    await readFully(path, file, rec, recordOffset);
    const rv = new DataView(rec.buffer);
    if (rv.getUint32(0, true) !== ZIP64_EOCD_SIG) {
      throw new ZipFormatError(`${path}: bad zip64 end-of-central-directory record at ${recordOffset}`);
    }
    count = safeNumber(path, rv.getBigUint64(32, true), 'zip64 entry count');
    cdSize = safeNumber(path, rv.getBigUint64(40, true), 'zip64 central directory size');
    cdOffset = safeNumber(path, rv.getBigUint64(48, true), 'zip64 central directory offset');
  } else if (needsZip64) {
    throw new ZipFormatError(`${path}: the archive needs zip64 records but has no zip64 locator`);
  }
  if (count > limits.maxEntries)
    throw new ZipFormatError(`${path}: ${count} entries is more than the ${limits.maxEntries} allowed`);
  if (cdSize > limits.maxCentralDirectoryBytes) {
    throw new ZipFormatError(
      `${path}: central directory of ${cdSize} bytes is more than the ${limits.maxCentralDirectoryBytes} allowed`,
    );
  }
  if (cdOffset + cdSize > fileSize) {
    throw new ZipFormatError(
      `${path}: central directory [${cdOffset}, ${cdOffset + cdSize}) points outside the file (${fileSize} bytes; truncated?)`,
    );
  }
  if (count * 46 > cdSize) {
    throw new ZipFormatError(`${path}: central directory of ${cdSize} bytes cannot hold ${count} entries`);
  }
  const cd = new Uint8Array(cdSize);
  await readFully(path, file, cd, cdOffset);
  const cv = new DataView(cd.buffer);
  const decoder = new TextDecoder('utf-8', { fatal: false });
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || cv.getUint32(p, true) !== CENTRAL_SIG) {
      throw new ZipFormatError(`${path}: central directory entry ${i} at offset ${cdOffset + p} is malformed`);
    }
    const flags = cv.getUint16(p + 8, true);
    const method = cv.getUint16(p + 10, true);
    const crc = cv.getUint32(p + 16, true);
    let compressedSize = cv.getUint32(p + 20, true);
    let size = cv.getUint32(p + 24, true);
    const nameLen = cv.getUint16(p + 28, true);
    const extraLen = cv.getUint16(p + 30, true);
    const commentLen = cv.getUint16(p + 32, true);
    const disk = cv.getUint16(p + 34, true);
    let headerOffset = cv.getUint32(p + 42, true);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cdSize) throw new ZipFormatError(`${path}: central directory entry ${i} runs past the directory`);
    const name = decoder.decode(cd.subarray(p + 46, p + 46 + nameLen));
    if (flags & 1) throw new ZipFormatError(`${path}: entry '${name}' is encrypted`);
    // zip64 extended information: 8-byte fields present only for the 32-bit fields that overflowed.
    let q = p + 46 + nameLen;
    const extraEnd = q + extraLen;
    while (q + 4 <= extraEnd) {
      const id = cv.getUint16(q, true);
      const len = cv.getUint16(q + 2, true);
      if (q + 4 + len > extraEnd) break;
      if (id === 0x0001) {
        let r = q + 4;
        const take = (what: string): number => {
          if (r + 8 > q + 4 + len) throw new ZipFormatError(`${path}: zip64 field '${what}' of '${name}' is missing`);
          const v = safeNumber(path, cv.getBigUint64(r, true), `${what} of '${name}'`);
          r += 8;
          return v;
        };
        if (size === 0xffffffff) size = take('size');
        if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
        if (headerOffset === 0xffffffff) headerOffset = take('header offset');
      }
      q += 4 + len;
    }
    if (disk !== 0 && disk !== 0xffff) throw new ZipFormatError(`${path}: entry '${name}' is on another disk`);
    if (headerOffset + 30 > cdOffset || headerOffset + 30 + compressedSize > cdOffset) {
      throw new ZipFormatError(
        `${path}: entry '${name}' (${compressedSize} bytes at offset ${headerOffset}) lies outside the archive's data area (which ends at ${cdOffset})`,
      );
    }
    if (method === 0 && compressedSize !== size) {
      throw new ZipFormatError(
        `${path}: stored entry '${name}' has compressed size ${compressedSize} but size ${size}`,
      );
    }
    if (entries.has(name)) throw new ZipFormatError(`${path}: duplicate entry '${name}'`);
    entries.set(name, { name, method, compressedSize, size, crc32: crc, headerOffset });
    p = end;
  }
  return entries;
}

function safeNumber(path: string, v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipFormatError(`${path}: ${what} ${v} is out of range`);
  return Number(v);
}
