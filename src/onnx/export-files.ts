/** Node side of the ONNX exports: the model's hash, writing an export folder and reading its manifest. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically, writeFully } from '../io/atomic-write.js';
import { MANIFEST_FILE, type NetworkExport, type OnnxExportManifest } from './export-network.js';
import { dataFingerprint, FINGERPRINT_EDGE } from './external-data.js';
import { chunkBytes, type DataChunk } from './onnx-model.js';
import { checkManifest } from './segmented-network.js';

/** sha256 over the files a model is made of (its config and weights: what an export was made from). */
export async function filesHash(paths: readonly string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const path of paths) {
    await new Promise<void>((resolve, reject) => {
      createReadStream(path)
        .on('data', (chunk) => hash.update(chunk))
        .on('end', () => resolve())
        .on('error', (e) => reject(new Error(`filesHash: cannot read ${path}: ${e.message}`)));
    });
  }
  return hash.digest('hex');
}

/** An export's manifest file, parsed (not yet checked); a missing or unparsable file is named (`who` says whose). */
export async function readManifestJson(path: string, who: string): Promise<unknown> {
  const text = await readFile(path, 'utf8').catch((e: Error) => {
    throw new Error(`${who}: cannot read ${path}: ${e.message}`);
  });
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/**
 * Writes the segments (external data, then graphs), then the manifest (so a folder with a manifest
 * is complete); `onBytes` is told the bytes of each piece written (exportBytes in all, the manifest aside).
 */
export async function writeNetworkExport(
  dir: string,
  exported: NetworkExport,
  onBytes?: (bytes: number) => void,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [i, segment] of exported.manifest.segments.entries()) {
    const chunks = exported.data[i];
    if (segment.data && chunks) await writeChunks(join(dir, segment.data.file), chunks, onBytes);
    await writeChunks(join(dir, segment.file), [exported.files[i]!], onBytes);
  }
  await writeChunks(join(dir, MANIFEST_FILE), [
    new TextEncoder().encode(`${JSON.stringify(exported.manifest, null, 2)}\n`),
  ]);
}

/**
 * Writes a file from chunks in order, atomically (a reader sees the old file or the whole new one);
 * a deferred chunk is read as it is written, so that only one is in memory at a time.
 */
export async function writeChunks(
  path: string,
  chunks: readonly DataChunk[],
  onBytes?: (bytes: number) => void,
): Promise<void> {
  await writeFileAtomically(path, async (handle) => {
    let at = 0;
    for (const c of chunks) {
      await writeFully(handle, chunkBytes(c), at);
      at += c.byteLength;
      onBytes?.(c.byteLength);
    }
  });
}

/**
 * Refuses a segment's external data file that is missing or is not the one the export wrote
 * (size and fingerprint), naming the file: ONNX Runtime's own error would come later and say less.
 */
export async function checkExternalData(
  dir: string,
  data: { file: string; bytes: number; fingerprint: string },
): Promise<void> {
  const path = join(dir, data.file);
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    throw new Error(
      `the export's weights file ${path} is missing or unreadable (${(e as Error).message}); export again`,
    );
  }
  try {
    const { size } = await handle.stat();
    if (size !== data.bytes)
      throw new Error(
        `the export's weights file ${path} has ${size} bytes, the export wrote ${data.bytes}; export again`,
      );
    const edge = Math.min(size, FINGERPRINT_EDGE);
    const head = new Uint8Array(edge);
    const tail = new Uint8Array(edge);
    await handle.read(head, 0, edge, 0);
    await handle.read(tail, 0, edge, size - edge);
    const got = dataFingerprint(head, tail, size);
    if (got !== data.fingerprint)
      throw new Error(
        `the export's weights file ${path} is not the one the export wrote (fingerprint ${got}, expected ${data.fingerprint}); export again`,
      );
  } finally {
    await handle.close();
  }
}

/** Refuses an export whose graph files are missing or not the size the export wrote (`who` says whose). */
export async function checkGraphFiles(
  dir: string,
  graphs: readonly { file: string; bytes: number }[],
  who: string,
): Promise<void> {
  for (const graph of graphs) {
    const file = join(dir, graph.file);
    const size = await stat(file).then(
      (s) => s.size,
      (e: Error) => {
        throw new Error(`${who}: cannot read ${file}: ${e.message}`);
      },
    );
    if (size !== graph.bytes)
      throw new Error(`${who}: ${file} has ${size} bytes, the export wrote ${graph.bytes}; export again`);
  }
}

/** Writes each graph file, then the manifest (so a folder with a manifest is complete). */
export async function writeGraphsAndManifest(
  dir: string,
  graphs: readonly { file: string }[],
  files: readonly Uint8Array[],
  manifestFile: string,
  manifest: unknown,
  onBytes?: (bytes: number) => void,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [i, graph] of graphs.entries()) await writeChunks(join(dir, graph.file), [files[i]!], onBytes);
  await writeChunks(join(dir, manifestFile), [new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`)]);
}

/** A file name inside one folder: one path segment of plain characters, no dot files. */
const PLAIN_FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$/;

/** `name` from a manifest's `field`, refused unless it is a plain file name in the export's folder. */
export function plainFileName(name: unknown, field: string, manifestPath: string): string {
  if (typeof name !== 'string' || !PLAIN_FILE_NAME.test(name))
    throw new Error(`${manifestPath}: ${field} ${JSON.stringify(name)} is not a file name in the export's folder`);
  return name;
}

/** The files of an export folder as its manifest names them: the manifest, each graph and its external data. */
export interface ExportFolder<M = OnnxExportManifest> {
  dir: string;
  manifest: M;
  /** Every file of the export by name (manifest first), with its size in bytes. */
  files: Map<string, number>;
}

/** An export's manifest file, read and parsed (not yet checked), with its size; errors name the file. */
export async function readManifestFile(path: string): Promise<{ value: unknown; bytes: number }> {
  const text = await readFile(path).catch((e: Error) => {
    throw new Error(`cannot read ${path}: ${e.message}`);
  });
  try {
    return { value: JSON.parse(new TextDecoder().decode(text)) as unknown, bytes: text.length };
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/**
 * An export folder whose files are all there as its manifest describes them (each segment a
 * file, of its recorded size where the manifest has one; external data of its size and
 * fingerprint), checked without opening it in ONNX Runtime: what the server hands to the page.
 */
export async function checkExportFolder(dir: string): Promise<ExportFolder> {
  const manifestPath = join(dir, MANIFEST_FILE);
  const { value, bytes } = await readManifestFile(manifestPath);
  const manifest = checkManifest(value, manifestPath);
  const files = new Map<string, number>([[MANIFEST_FILE, bytes]]);
  for (const [i, segment] of manifest.segments.entries()) {
    const path = join(dir, plainFileName(segment.file, `segments[${i}].file`, manifestPath));
    const info = await stat(path).catch((e: Error) => {
      throw new Error(`cannot read ${path}: ${e.message}`);
    });
    if (!info.isFile()) throw new Error(`${path} is not a file`);
    if (segment.bytes !== undefined && info.size !== segment.bytes)
      throw new Error(`${path} has ${info.size} bytes, the export wrote ${segment.bytes}`);
    files.set(segment.file, info.size);
    if (segment.data) {
      plainFileName(segment.data.file, `segments[${i}].data.file`, manifestPath);
      await checkExternalData(dir, segment.data);
      files.set(segment.data.file, segment.data.bytes);
    }
  }
  return { dir, manifest, files };
}
