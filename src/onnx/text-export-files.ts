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
  readManifestJson,
  writeChunks,
  writeGraphsAndManifest,
} from './export-files.js';
import { type CachedExport, type CachedExportRequest, inspectManifest, loadOrMakeExport } from './export-cache.js';
import { ortSessionOptions } from './ort-network.js';
import { checkTextManifest, OrtTextTower } from './ort-text-tower.js';
import { TEXT_MANIFEST_FILE, textExportKey, type TextExport, type TextExportShape } from './text-export.js';

/** A tower whose weights file is larger than this keeps one bucket's session open at a time (each holds a copy). */
const ONE_SESSION_ABOVE = 256 * 1024 * 1024;

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
 * The text export in `dir` as an OrtTextTower: its manifest parsed, its weights file and every
 * graph file checked (present, the size the export wrote) before any session is made.
 */
export async function loadTextExport(dir: string, options: { threads?: number } = {}): Promise<OrtTextTower> {
  const path = join(dir, TEXT_MANIFEST_FILE);
  const manifest = checkTextManifest(await readManifestJson(path, 'OrtTextTower'), path);
  if (manifest.data)
    await checkExternalData(dir, manifest.data).catch((e: Error) => {
      throw new Error(`OrtTextTower: ${e.message}`);
    });
  await checkGraphFiles(dir, manifest.graphs, 'OrtTextTower');
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
    (manifest.data?.bytes ?? 0) > ONE_SESSION_ABOVE ? 1 : manifest.graphs.length,
  );
}

/** inspectManifest for a text export of `shape`. */
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
