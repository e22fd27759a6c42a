import { closeSync, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';

/** Why a file was not read: it is not there, not a regular file, or larger than allowed. */
export type BoundedReadReason = 'missing' | 'not-regular' | 'too-large';

export class BoundedReadError extends Error {
  override name = 'BoundedReadError';
  constructor(
    readonly reason: BoundedReadReason,
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${path}: ${detail}`);
  }
}

function kindOf(info: Stats): string {
  if (info.isDirectory()) return 'a folder';
  if (info.isFIFO()) return 'a FIFO';
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device';
  if (info.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Refuses what is not a regular file of at most `maxBytes` before anything is read from it: a
 * FIFO would block forever, and a device such as /dev/zero (also through a symbolic link) never
 * ends. Checked on the path (so a FIFO is never opened) and again on the open descriptor.
 */
function check(path: string, info: Stats, maxBytes: number): number {
  if (!info.isFile()) throw new BoundedReadError('not-regular', path, `${kindOf(info)}, not a regular file; not read`);
  if (info.size > maxBytes)
    throw new BoundedReadError('too-large', path, `file is ${info.size} bytes, more than the limit of ${maxBytes}`);
  return info.size;
}

function missing(path: string, error: unknown): BoundedReadError {
  return new BoundedReadError(
    'missing',
    path,
    `cannot read (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
  );
}

/** The bytes of a regular file of at most `maxBytes`; reads exactly the size it had when opened. */
export async function readRegularFile(path: string, maxBytes: number): Promise<Uint8Array> {
  let info: Stats;
  try {
    info = await stat(path);
  } catch (error) {
    throw missing(path, error);
  }
  check(path, info, maxBytes);
  const handle = await open(path, 'r').catch((error: unknown) => {
    throw missing(path, error);
  });
  try {
    const size = check(path, await handle.stat(), maxBytes);
    const bytes = new Uint8Array(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await handle.read(bytes, done, size - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done === size ? bytes : bytes.subarray(0, done);
  } finally {
    await handle.close();
  }
}

/** readRegularFile for synchronous callers. */
export function readRegularFileSync(path: string, maxBytes: number): Uint8Array {
  let info: Stats;
  try {
    info = statSync(path);
  } catch (error) {
    throw missing(path, error);
  }
  check(path, info, maxBytes);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw missing(path, error);
  }
  try {
    const size = check(path, fstatSync(fd), maxBytes);
    const bytes = new Uint8Array(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, bytes, done, size - done, done);
      if (n === 0) break;
      done += n;
    }
    return done === size ? bytes : bytes.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}
