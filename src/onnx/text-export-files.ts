/**
 * Node side of the text tower's export: writing its folder, checking and loading it into
 * onnxruntime-node sessions (one per bucket, opened on first use), and the disk cache around
 * them (the network exports' checks: model hash, opset, buckets).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import {
  checkExternalData,
  checkGraphFiles,
  type ExportFolder,
  plainFileName,
  readManifestFile,
  writeChunks,
  writeGraphsAndManifest,
} from './export-files.js';
import { type CachedExport, type CachedExportRequest, inspectManifest, loadOrMakeExport } from './export-cache.js';
import { ortSessionOptions } from './ort-network.js';
import { checkTextManifest, OrtTextTower, textSessionsKept } from './ort-text-tower.js';
import {
  TEXT_MANIFEST_FILE,
  textExportKey,
  type TextExport,
  type TextExportManifest,
  type TextExportShape,
} from './text-export.js';

/**
 * Writes the weights file, then the graphs, then the manifest (so a folder with a manifest is
 * complete); `onBytes` is told the bytes of each piece of the weights file and each graph written.
 */
export async function writeTextExport(
  dir: string,
  exported: TextExport,
  onBytes?: (bytes: number) => void,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const { manifest, data } = exported;
  if (manifest.data && data) await writeChunks(join(dir, manifest.data.file), data, onBytes);
  await writeGraphsAndManifest(dir, manifest.graphs, exported.files, TEXT_MANIFEST_FILE, manifest, onBytes);
}

/** The bytes writeTextExport writes (the manifest aside). */
export function textExportBytes(exported: TextExport): number {
  return exported.files.reduce((a, f) => a + f.length, 0) + (exported.manifest.data?.bytes ?? 0);
}

/**
 * A text export folder whose files are all there as its manifest describes them: its weights file
 * of the size and fingerprint the export wrote, every graph file of its recorded size, every name
 * a plain file name of the folder; checked without opening it in ONNX Runtime (errors start with `who`).
 */
export async function checkTextExportFolder(
  dir: string,
  who = 'OrtTextTower',
): Promise<ExportFolder<TextExportManifest>> {
  const path = join(dir, TEXT_MANIFEST_FILE);
  const named = <T>(work: () => Promise<T>) =>
    work().catch((e: Error) => {
      throw new Error(`${who}: ${e.message}`);
    });
  const { value, bytes } = await named(() => readManifestFile(path));
  const manifest = checkTextManifest(value, path);
  const files = new Map<string, number>([[TEXT_MANIFEST_FILE, bytes]]);
  const { data } = manifest;
  if (data) {
    await named(async () => {
      plainFileName(data.file, 'data.file', path);
      await checkExternalData(dir, data);
    });
    files.set(data.file, data.bytes);
  }
  await named(async () => {
    for (const [i, graph] of manifest.graphs.entries()) plainFileName(graph.file, `graphs[${i}].file`, path);
  });
  await checkGraphFiles(dir, manifest.graphs, who);
  for (const graph of manifest.graphs) files.set(graph.file, graph.bytes);
  return { dir, manifest, files };
}

/**
 * The text export in `dir` as an OrtTextTower: its folder checked (checkTextExportFolder) before
 * any session is made.
 */
export async function loadTextExport(dir: string, options: { threads?: number } = {}): Promise<OrtTextTower> {
  const { manifest } = await checkTextExportFolder(dir);
  const sessionOptions = ortSessionOptions(options);
  return new OrtTextTower(
    manifest,
    (graph) => {
      const file = join(dir, graph.file);
      // From the path, so that ONNX Runtime finds the shared weights file next to it.
      return ort.InferenceSession.create(file, sessionOptions).catch((e: Error) => {
        throw new Error(`OrtTextTower: ONNX Runtime refused ${file}: ${e.message}`);
      });
    },
    (type, data, dims) => new ort.Tensor(type, data, dims),
    textSessionsKept(manifest),
  );
}

/** Whether the text export in `dir` fits a model of `hash` and the buckets of `shape` (inspectManifest). */
export function inspectCachedTextExport(dir: string, hash: string, shape: TextExportShape): Promise<CachedExport> {
  return inspectManifest(dir, {
    manifestFile: TEXT_MANIFEST_FILE,
    hash,
    key: textExportKey(shape),
    keyOf: (s: TextExportShape) =>
      Array.isArray(s.batch) && Array.isArray(s.lengths) ? textExportKey(s) : 'a malformed shape',
  });
}

/** The cached text export that fits, or one made now (loadOrMakeExport). */
export function loadCachedTextExport(request: CachedExportRequest<TextExportShape, TextExport>): Promise<OrtTextTower> {
  const { hash, shape, threads } = request;
  return loadOrMakeExport({
    dirs: request.dirs,
    inspect: (dir) => inspectCachedTextExport(dir, hash, shape),
    make: request.make,
    write: writeTextExport,
    load: (dir) => loadTextExport(dir, { threads }),
    report: request.report,
  });
}
