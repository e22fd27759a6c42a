/**
 * The network forward of predict on ONNX Runtime in Node: exports are made on first use for each
 * input geometry and sentence count, cached on disk next to the model (checked against the model's
 * hash) and in memory. The forward itself is OrtRunner's (shared with the page).
 */
import { join } from 'node:path';
import type { ApeNetwork } from '../modeling/ape-network.js';
import { exportKey, exportNetwork, type ExportShape } from './export-network.js';
import { checkExportFolder, filesHash, type ExportFolder } from './export-files.js';
import { exportCacheDirs, loadCachedExport, openCachedExport, type CachedExportRequest } from './export-cache.js';
import type { OrtNetwork } from './ort-network.js';
import { OrtRunner } from './ort-runner.js';

/** Where the model came from: its folder and the files whose hash keys the cached exports. */
export interface ModelSource {
  dir: string;
  files: string[];
}

export interface OrtEngineOptions {
  /** Where exports are cached (default: MODEL_DIR/onnx). */
  cacheDir?: string;
  /**
   * Where exports go when cacheDir cannot be written (a read-only model folder, such as one inside
   * an installed package): a folder per model (name and hash) under it, looked in after cacheDir.
   * loadModel sets $APE_HOME/onnx (default ~/.cache/ape/onnx); unset, there is no fallback.
   */
  fallbackCacheDir?: string;
  /**
   * Exports kept loaded (ONNX Runtime sessions: about 130 MB each for the tiny model at 256): the
   * least recently used beyond this many is released, and loaded again from the disk cache when
   * its shape comes back (default DEFAULT_MAX_LOADED in ort-runner.ts).
   */
  maxLoaded?: number;
  /** ONNX Runtime threads per session (default: all cores). */
  threads?: number;
  /** Told when an export is being made (it takes seconds for the tiny model, minutes for large ones). */
  onExport?: (message: string) => void;
}

export class OrtEngine extends OrtRunner {
  readonly name = 'ort';
  private hash: Promise<string> | null = null;

  constructor(
    network: ApeNetwork,
    private readonly source: ModelSource,
    private readonly options: OrtEngineOptions = {},
  ) {
    super(network, options.maxLoaded);
  }

  /** sha256 of the model's config and weights (computed once): the hash its exports are checked against. */
  modelHash(): Promise<string> {
    this.hash ??= filesHash(this.source.files);
    return this.hash;
  }

  /** From the disk cache (the model folder's, then the fallback) when it matches, or made now and cached. */
  protected async loadNetwork(key: string, shape: ExportShape): Promise<OrtNetwork> {
    return loadCachedExport({ ...(await this.cacheRequest(key, shape)), threads: this.options.threads });
  }

  /**
   * The export's folder for one shape, from the disk cache or made now, with its files checked
   * but not opened in ONNX Runtime: what `ape serve` hands to the page.
   */
  async exportFolder(shape: ExportShape): Promise<ExportFolder> {
    return openCachedExport(await this.cacheRequest(exportKey(shape), shape), checkExportFolder);
  }

  private async cacheRequest(key: string, shape: ExportShape): Promise<Omit<CachedExportRequest, 'threads'>> {
    const hash = await this.modelHash();
    return {
      dirs: exportCacheDirs(
        this.source.dir,
        this.network.config.name,
        hash,
        this.options.cacheDir,
        this.options.fallbackCacheDir,
      ).map((d) => join(d, key)),
      hash,
      shape,
      make: () => {
        this.options.onExport?.(
          `exporting ${this.network.config.name} to ONNX for ${key} (once per image shape and sentence count) ...`,
        );
        return exportNetwork(this.network, shape, hash);
      },
      report: (message) => this.options.onExport?.(message),
    };
  }
}
