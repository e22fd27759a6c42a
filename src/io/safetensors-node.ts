/**
 * safetensors files on disk. Reading goes through a file handle: the header first, then only the
 * tensors asked for, so a multi-gigabyte checkpoint is never held as one buffer. Writing is
 * atomic (temporary file, then rename).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { writeFileAtomically, writeFully } from './atomic-write.js';
import {
  decodeTensor,
  encodeSafetensorsParts,
  parseSafetensorsHeader,
  MAX_HEADER_BYTES,
  SafetensorsError,
  type SafetensorsEntry,
  type SafetensorsFile,
  type SafetensorsHeader,
  type SafetensorsInput,
  type SafetensorsTensorInfo,
  type TensorData,
} from './safetensors.js';

export interface ReadSafetensorsFileOptions {
  /** Which tensors to load (default all). */
  filter?: (name: string) => boolean;
}

async function readExactly(
  handle: import('node:fs/promises').FileHandle,
  length: number,
  position: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, done, length - done, position + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
  return out;
}

export async function readSafetensorsHeaderFile(path: string): Promise<SafetensorsHeader> {
  const handle = await open(path, 'r');
  try {
    return await headerOf(handle, path);
  } finally {
    await handle.close();
  }
}

async function headerOf(handle: import('node:fs/promises').FileHandle, path: string): Promise<SafetensorsHeader> {
  const { size } = await handle.stat();
  if (size < 8)
    throw new SafetensorsError(path, `file is ${size} bytes; a safetensors file starts with an 8-byte header length`);
  const prefix = await readExactly(handle, 8, 0);
  const view = new DataView(prefix.buffer);
  const n = view.getUint32(4, true) === 0 ? view.getUint32(0, true) : Infinity;
  // Read at most what the header may be; parseSafetensorsHeader reports the exact problem.
  const head = n <= MAX_HEADER_BYTES && 8 + n <= size ? await readExactly(handle, 8 + n, 0) : prefix;
  return parseSafetensorsHeader(head, size, path);
}

export async function readSafetensorsFile(
  path: string,
  options: ReadSafetensorsFileOptions = {},
): Promise<SafetensorsFile> {
  const handle = await open(path, 'r');
  try {
    const header = await headerOf(handle, path);
    const tensors = new Map<string, SafetensorsEntry>();
    for (const t of header.tensors) {
      if (options.filter && !options.filter(t.name)) continue;
      const bytes = await readExactly(handle, t.end - t.begin, header.dataStart + t.begin);
      tensors.set(t.name, { dtype: t.dtype, shape: t.shape, data: decodeTensor(t, bytes) });
    }
    return { tensors, metadata: header.metadata };
  } finally {
    await handle.close();
  }
}

/**
 * One tensor of a safetensors file whose header was read (readSafetensorsHeaderFile), read now by
 * its range alone, synchronously (a writer that reads each tensor as it writes it holds one at a time).
 */
export function readSafetensorsTensorSync(
  path: string,
  header: SafetensorsHeader,
  tensor: SafetensorsTensorInfo,
): TensorData {
  const length = tensor.end - tensor.begin;
  const out = new Uint8Array(length);
  const fd = openSync(path, 'r');
  try {
    let done = 0;
    while (done < length) {
      const read = readSync(fd, out, done, length - done, header.dataStart + tensor.begin + done);
      if (read === 0)
        throw new SafetensorsError(
          path,
          `tensor '${tensor.name}': unexpected end of file at byte ${header.dataStart + tensor.begin + done}`,
        );
      done += read;
    }
  } finally {
    closeSync(fd);
  }
  return decodeTensor(tensor, out);
}

export async function writeSafetensorsFile(
  path: string,
  tensors: Record<string, SafetensorsInput> | Map<string, SafetensorsInput>,
  metadata?: Record<string, string>,
): Promise<void> {
  const { header, parts } = encodeSafetensorsParts(tensors, metadata);
  await writeFileAtomically(path, async (handle) => {
    let position = 0;
    for (const part of [header, ...parts]) {
      await writeFully(handle, part, position);
      position += part.byteLength;
    }
    await handle.sync();
  });
}
