/**
 * ONNX external data files (the weights of a segment stored next to its graph): a fingerprint
 * made when they are written and checked before ONNX Runtime opens the graph, so that a missing,
 * truncated or foreign data file is refused with a message that names it instead of failing inside
 * ONNX Runtime.
 */
import { chunkBytes, type DataChunk } from './onnx-model.js';

/** Bytes at each end of the file that the fingerprint covers (with the size: cheap on GBs). */
export const FINGERPRINT_EDGE = 1 << 16;

/** FNV-1a (32-bit) of bytes, as 8 hex digits. */
function fnv1a(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** A file's fingerprint from its size and its first and last FINGERPRINT_EDGE bytes (or fewer). */
export function dataFingerprint(head: Uint8Array, tail: Uint8Array, bytes: number): string {
  return `${bytes}:${fnv1a(head)}:${fnv1a(tail)}`;
}

/**
 * The first and last FINGERPRINT_EDGE bytes of a file given as chunks in order (a deferred chunk is
 * read only where it overlaps them).
 */
export function chunkEdges(chunks: readonly DataChunk[], bytes: number): { head: Uint8Array; tail: Uint8Array } {
  const edge = Math.min(FINGERPRINT_EDGE, bytes);
  const copy = (from: number): Uint8Array => {
    const out = new Uint8Array(edge);
    let at = 0;
    for (const c of chunks) {
      const start = Math.max(from, at);
      const end = Math.min(from + edge, at + c.byteLength);
      if (start < end) out.set(chunkBytes(c).subarray(start - at, end - at), start - from);
      at += c.byteLength;
    }
    return out;
  };
  return { head: copy(0), tail: copy(bytes - edge) };
}
