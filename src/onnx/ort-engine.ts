/**
 * The network forward of predict on ONNX Runtime in Node: exports are made on first use for each
 * input geometry and sentence count, cached on disk next to the model (checked against the model's
 * hash) and in memory. The forward itself is OrtRunner's (shared with the page).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApeNetwork } from '../modeling/ape-network.js';
import { exportNetwork, MANIFEST_FILE, type ExportShape } from './export-network.js';
import { filesHash, writeNetworkExport } from './export-files.js';
import { OrtNetwork } from './ort-network.js';
import { OPSET } from './kernel-ops.js';
import { OrtRunner } from './ort-runner.js';

/** Where the model came from: its folder and the files whose hash keys the cached exports. */
export interface ModelSource {
  dir: string;
  files: string[];
}

export interface OrtEngineOptions {
  /** Where exports are cached (default: MODEL_DIR/onnx). */
  cacheDir?: string;
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
    super(network);
  }

  /** From the disk cache when its hash matches, or made now and cached. */
  protected async loadNetwork(key: string, shape: ExportShape): Promise<OrtNetwork> {
    this.hash ??= filesHash(this.source.files);
    const hash = await this.hash;
    const dir = join(this.options.cacheDir ?? join(this.source.dir, 'onnx'), key);
    const cached = await readFile(join(dir, MANIFEST_FILE), 'utf8')
      .then((t) => JSON.parse(t) as { model?: { hash?: string }; opset?: number } | null)
      .catch(() => null);
    // Made from these weights by this exporter (same opset): load it; anything else is made again.
    if (cached?.model?.hash === hash && cached.opset === OPSET) {
      try {
        return await OrtNetwork.load(dir, { threads: this.options.threads });
      } catch (e) {
        this.options.onExport?.(`ONNX export ${dir} is unusable (${(e as Error).message}); making it again`);
      }
    }
    const started = performance.now();
    this.options.onExport?.(`exporting ${this.network.config.name} to ONNX for ${key} (once; cached in ${dir}) ...`);
    await writeNetworkExport(dir, exportNetwork(this.network, shape, hash));
    this.options.onExport?.(`exported in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return OrtNetwork.load(dir, { threads: this.options.threads });
  }
}
