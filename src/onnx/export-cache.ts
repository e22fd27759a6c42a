/**
 * The on-disk cache of ONNX exports (Node): where an export of a model and shape is looked for and
 * written, whether a cached one still fits, and loading it or making it again.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportKey, MANIFEST_FILE, MANIFEST_VERSION, type ExportShape } from './export-network.js';
import { OPSET } from './kernel-ops.js';

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

/** What a cached export's manifest must say to fit: its file, the model hash, and the key of its shape. */
export interface ExpectedExport<S> {
  manifestFile: string;
  hash: string;
  key: string;
  /** The manifest format version it must have, where the export's format has one. */
  version?: number;
  /** The key of the shape a manifest records (as the export's key function makes it). */
  keyOf: (shape: S) => string;
}

/** Reads the manifest in `dir`: an export fits when made from these weights, by this exporter's opset (and format version), for this shape. */
export async function inspectManifest<S>(dir: string, expected: ExpectedExport<S>): Promise<CachedExport> {
  const { manifestFile, hash, key } = expected;
  const stale = (why: string): CachedExport => ({ state: 'stale', why });
  let text: string;
  try {
    text = await readFile(join(dir, manifestFile), 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { state: 'missing' };
    return stale(`cannot be read (${(e as Error).message})`);
  }
  let m: { model?: { hash?: unknown }; opset?: unknown; version?: unknown; shape?: unknown } | null;
  try {
    m = JSON.parse(text) as typeof m;
  } catch (e) {
    return stale(`has a damaged ${manifestFile} (${(e as Error).message})`);
  }
  if (!m || typeof m !== 'object') return stale(`has a damaged ${manifestFile}`);
  if (m.model?.hash !== hash)
    return stale(
      `was made from other weights (model hash ${String(m.model?.hash).slice(0, 12)}, these are ${hash.slice(0, 12)})`,
    );
  if (m.opset !== OPSET) return stale(`has opset ${String(m.opset)}; this exporter writes opset ${OPSET}`);
  if (expected.version !== undefined && m.version !== expected.version)
    return stale(`has format version ${String(m.version)}; this exporter writes version ${expected.version}`);
  const made = m.shape ? expected.keyOf(m.shape as S) : null;
  if (made !== key) return stale(`was made for ${made ?? 'no recorded shape'}, not ${key}`);
  return { state: 'fits' };
}

/** inspectManifest for a network export of `shape`. */
export function inspectCachedExport(dir: string, hash: string, shape: ExportShape): Promise<CachedExport> {
  return inspectManifest(dir, {
    manifestFile: MANIFEST_FILE,
    hash,
    key: exportKey(shape),
    keyOf: exportKey,
    version: MANIFEST_VERSION,
  });
}

/** Finding, making, writing and loading one export: what loadOrMakeExport needs. */
export interface ExportCacheRequest<E, L> {
  /** The export's folder in each cache, in order of preference (exportCacheDirs + the shape's key). */
  dirs: string[];
  inspect: (dir: string) => Promise<CachedExport>;
  /** Makes the export when no cached one fits (seconds for the tiny model). */
  make: () => E | Promise<E>;
  write: (dir: string, exported: E) => Promise<void>;
  /** Frees what the made export holds once it is written (or could not be). */
  release?: (exported: E) => void;
  load: (dir: string) => Promise<L>;
  /** Told why a cached export is not used, where a new one went, and how long it took. */
  report: (message: string) => void;
}

/**
 * The first cached export that fits and that loads; else one made now and written to the first
 * folder that can be written (a read-only model folder passes it to the next). A stale or damaged
 * export (other weights, another opset or shape, a truncated or missing file) is made again, never run.
 */
export async function loadOrMakeExport<E, L>(request: ExportCacheRequest<E, L>): Promise<L> {
  const { dirs, report } = request;
  for (const dir of dirs) {
    const cached = await request.inspect(dir);
    if (cached.state === 'missing') continue;
    if (cached.state === 'stale') {
      report(`the ONNX export in ${dir} ${cached.why}; making it again`);
      continue;
    }
    try {
      return await request.load(dir);
    } catch (e) {
      report(`the ONNX export in ${dir} is unusable (${(e as Error).message}); making it again`);
    }
  }
  const started = performance.now();
  const exported = await request.make();
  let written: string | null = null;
  try {
    for (const [i, dir] of dirs.entries()) {
      try {
        await request.write(dir, exported);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        const next = dirs[i + 1];
        // The model folder may be read-only (an installed package): the user's cache takes the export.
        if (!code || next === undefined)
          throw new Error(`cannot write the ONNX export to ${dir}: ${(e as Error).message}`);
        report(`cannot write ${dir} (${code}); caching the export in ${next} instead`);
        continue;
      }
      written = dir;
      break;
    }
  } finally {
    request.release?.(exported);
  }
  if (written === null) throw new Error('loadOrMakeExport: no cache folder given');
  report(`exported in ${((performance.now() - started) / 1000).toFixed(1)} s to ${written}`);
  return request.load(written);
}

/** One export of a model (the text tower's, the vocabulary scoring's) looked up, or made, in the cache folders. */
export interface CachedExportRequest<S, E> {
  /** The export's folder in each cache, in order of preference (exportCacheDirs + the shape's key). */
  dirs: string[];
  /** The model's hash (filesHash of its config and weights). */
  hash: string;
  shape: S;
  /** Makes the export when no cached one fits (seconds for the tiny model). */
  make: () => E | Promise<E>;
  /** ONNX Runtime threads per session. */
  threads: number | undefined;
  /** Told why a cached export is not used, where a new one went, and how long it took. */
  report: (message: string) => void;
}
