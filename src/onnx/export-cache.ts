/**
 * The on-disk cache of ONNX exports (Node): where an export of a model and shape is looked for and
 * written, whether a cached one still fits, and loading it or making it again.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  exportKey,
  MANIFEST_FILE,
  type ExportShape,
  type NetworkExport,
  type OnnxExportManifest,
} from './export-network.js';
import { writeNetworkExport } from './export-files.js';
import { OPSET } from './kernel-ops.js';
import { OrtNetwork } from './ort-network.js';

/**
 * The folders exports of a model are looked for and written in, in order: `cacheDir` (default
 * MODEL_DIR/onnx), then, with a `fallbackCacheDir`, its folder for this model (name and hash).
 */
export function exportCacheDirs(
  modelDir: string,
  modelName: string,
  hash: string,
  cacheDir: string | undefined,
  fallbackCacheDir: string | undefined,
): string[] {
  const primary = cacheDir ?? join(modelDir, 'onnx');
  return fallbackCacheDir ? [primary, join(fallbackCacheDir, `${modelName}-${hash.slice(0, 16)}`)] : [primary];
}

/** What a cache folder holds for one model and shape: nothing, an export that fits, or a stale one (and why). */
export type CachedExport = { state: 'missing' } | { state: 'fits' } | { state: 'stale'; why: string };

/** Reads the manifest in `dir`: an export fits when made from these weights, by this exporter's opset, for this shape. */
export async function inspectCachedExport(dir: string, hash: string, shape: ExportShape): Promise<CachedExport> {
  const stale = (why: string): CachedExport => ({ state: 'stale', why });
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST_FILE), 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { state: 'missing' };
    return stale(`cannot be read (${(e as Error).message})`);
  }
  let m: Partial<OnnxExportManifest> | null;
  try {
    m = JSON.parse(text) as Partial<OnnxExportManifest> | null;
  } catch (e) {
    return stale(`has a damaged ${MANIFEST_FILE} (${(e as Error).message})`);
  }
  if (!m || typeof m !== 'object') return stale(`has a damaged ${MANIFEST_FILE}`);
  if (m.model?.hash !== hash)
    return stale(
      `was made from other weights (model hash ${String(m.model?.hash).slice(0, 12)}, these are ${hash.slice(0, 12)})`,
    );
  if (m.opset !== OPSET) return stale(`has opset ${String(m.opset)}; this exporter writes opset ${OPSET}`);
  if (!m.shape || exportKey(m.shape) !== exportKey(shape))
    return stale(`was made for ${m.shape ? exportKey(m.shape) : 'no recorded shape'}, not ${exportKey(shape)}`);
  return { state: 'fits' };
}

export interface CachedExportRequest {
  /** The export's folder in each cache, in order of preference (exportCacheDirs + the shape's key). */
  dirs: string[];
  /** The model's hash (filesHash of its config and weights). */
  hash: string;
  shape: ExportShape;
  /** Makes the export when no cached one fits (seconds for the tiny model). */
  make: () => NetworkExport;
  /** ONNX Runtime threads per session. */
  threads: number | undefined;
  /** Told why a cached export is not used, where a new one went, and how long it took. */
  report: (message: string) => void;
}

/**
 * The first cached export that fits and that ONNX Runtime accepts; else one made now and written
 * to the first folder that can be written (a read-only model folder passes it to the next).
 * A stale or damaged export (other weights, another opset or shape, a truncated or missing
 * segment) is made again, never run.
 */
export function loadCachedExport(request: CachedExportRequest): Promise<OrtNetwork> {
  return openCachedExport(request, (dir) => OrtNetwork.load(dir, { threads: request.threads }));
}

/**
 * loadCachedExport's search with another way to open a folder: `open` refuses an export that
 * fits on paper but is unusable (it throws), which makes it again.
 */
export async function openCachedExport<T>(
  request: Omit<CachedExportRequest, 'threads'>,
  open: (dir: string) => Promise<T>,
): Promise<T> {
  const { dirs, hash, shape, report } = request;
  for (const dir of dirs) {
    const cached = await inspectCachedExport(dir, hash, shape);
    if (cached.state === 'missing') continue;
    if (cached.state === 'stale') {
      report(`the ONNX export in ${dir} ${cached.why}; making it again`);
      continue;
    }
    try {
      return await open(dir);
    } catch (e) {
      report(`the ONNX export in ${dir} is unusable (${(e as Error).message}); making it again`);
    }
  }
  const started = performance.now();
  const exported = request.make();
  for (const [i, dir] of dirs.entries()) {
    try {
      await writeNetworkExport(dir, exported);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const next = dirs[i + 1];
      // The model folder may be read-only (an installed package): the user's cache takes the export.
      if (!code || next === undefined)
        throw new Error(`cannot write the ONNX export to ${dir}: ${(e as Error).message}`);
      report(`cannot write ${dir} (${code}); caching the export in ${next} instead`);
      continue;
    }
    report(`exported in ${((performance.now() - started) / 1000).toFixed(1)} s to ${dir}`);
    return open(dir);
  }
  throw new Error('openCachedExport: no cache folder given');
}
