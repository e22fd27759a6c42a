import { open, rename, unlink, type FileHandle } from 'node:fs/promises';

/**
 * Writes `path` atomically: `write` fills a temporary file next to it, which is then renamed over
 * it, so readers never see a half-written file; on failure the temporary file is removed.
 */
export async function writeFileAtomically<T>(path: string, write: (handle: FileHandle) => Promise<T>): Promise<T> {
  const temp = `${path}.${process.pid}.${Date.now()}.tmp`;
  const handle = await open(temp, 'w');
  try {
    const result = await write(handle);
    await handle.close();
    await rename(temp, path);
    return result;
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}

/** Writes all of `bytes` at `position` (one write call may take fewer bytes than asked). */
export async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength)
    done += (await handle.write(bytes, done, bytes.byteLength - done, position + done)).bytesWritten;
}
