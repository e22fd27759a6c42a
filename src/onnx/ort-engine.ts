/**
 * The network forward of predict on ONNX Runtime in Node: exports are made on first use for each
 * input size and sentence bucket, and one of the text tower for the prompts, cached on disk next
 * to the model (checked against the model's hash) and in memory. The forward itself is
 * OrtRunner's (shared with the page).
 */
import { join } from 'node:path';
import type { ApeNetwork } from '../modeling/ape-network.js';
import { exportKey, exportNetwork, type ExportShape } from './export-network.js';
import { checkExportFolder, filesHash, type ExportFolder } from './export-files.js';
import { exportCacheDirs, inspectCachedExport, loadOrMakeExport } from './export-cache.js';
import { OrtNetwork } from './ort-network.js';
import { OrtRunner } from './ort-runner.js';
import type { OrtTextTower } from './ort-text-tower.js';
import { exportTextTower, textExportKey, textExportShape, type TextExportManifest } from './text-export.js';
import { checkTextExportFolder, inspectCachedTextExport, loadTextExport } from './text-export-files.js';
import type { ExportProgress } from './export-progress.js';
import {
  type ModelFileExporter,
  type PendingExport,
  pendingNetworkExport,
  pendingTextExport,
} from './pending-export.js';
import type { OrtPromptScorer } from './ort-prompt-scorer.js';
import { exportPromptScorer, promptScoreExportKey, type PromptScoreShape } from './prompt-score-export.js';
import { loadCachedPromptScorer } from './prompt-score-files.js';
import { required } from '../util/checked.js';

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
  /**
   * Free the text tower's TF.js weights once its ONNX export has encoded prompts (a frozen tower
   * only; loadModel sets it for those): about 2.8 GB for the released models' EVA02-CLIP-E. The
   * model then cannot encode new prompts on TF.js (predictSync, setInferenceRunner(null)).
   */
  releaseTextWeights?: boolean;
  /** ONNX Runtime threads per session (default: all cores). */
  threads?: number;
  /** Told when an export is being made (it takes seconds for the tiny model, minutes for large ones). */
  onExport?: (message: string) => void;
  /** Told how far the export being made is (recording, then writing): for a progress display. */
  onExportProgress?: ExportProgress;
  /**
   * Makes the network's and the text tower's exports from the model's files instead of the loaded
   * network (ortEngineFor gives models whose weights would not leave the recording room one that
   * records in a thread of its own, from the part it records alone). Unset: from the loaded network.
   */
  exporter?: ModelFileExporter;
}

export class OrtEngine extends OrtRunner {
  readonly name = 'ort';
  private hash: Promise<string> | null = null;

  constructor(
    network: ApeNetwork,
    private readonly source: ModelSource,
    private readonly options: OrtEngineOptions = {},
  ) {
    super(network, { maxLoaded: options.maxLoaded, releaseTextWeights: options.releaseTextWeights });
  }

  /** sha256 of the model's config and weights (computed once): the hash its exports are checked against. */
  modelHash(): Promise<string> {
    this.hash ??= filesHash(this.source.files);
    return this.hash;
  }

  private cacheDirs(hash: string, key: string): string[] {
    return exportCacheDirs(
      this.source.dir,
      this.network.config.name,
      hash,
      this.options.cacheDir,
      this.options.fallbackCacheDir,
    ).map((d) => join(d, key));
  }

  /** The text tower's export from the disk cache when it matches, or made now (all its buckets at once) and cached. */
  protected loadTextTower(): Promise<OrtTextTower> {
    return this.textExport((dir) => loadTextExport(dir, { threads: this.options.threads }));
  }

  /**
   * The text tower's export folder, from the disk cache or made now, with its files checked but not
   * opened in ONNX Runtime: what `ape serve` hands to the page.
   */
  textExportFolder(): Promise<ExportFolder<TextExportManifest>> {
    return this.textExport((dir) => checkTextExportFolder(dir));
  }

  private async textExport<L>(load: (dir: string) => Promise<L>): Promise<L> {
    const hash = await this.modelHash();
    const { name, text } = this.network.config;
    const shape = textExportShape(text.encoder.contextLength);
    const key = textExportKey(shape);
    const dirs = this.cacheDirs(hash, key);
    const { exporter, onExportProgress } = this.options;
    return loadOrMakeExport({
      dirs,
      inspect: (dir) => inspectCachedTextExport(dir, hash, shape),
      make: (): Promise<PendingExport> | PendingExport => {
        if (!exporter && this.network.textTowerReleased)
          throw new Error(
            `the text tower's ONNX export (${dirs.join(', ')}) is missing or damaged and its TF.js weights were released; load the model again`,
          );
        this.options.onExport?.(`exporting ${name}'s text tower to ONNX (${key}, once per model) ...`);
        if (exporter) return exporter.textTower(shape, hash, onExportProgress);
        const exported = exportTextTower(
          this.network.language.net,
          text.pooling,
          shape,
          { name, hash },
          { externalData: true, onProgress: onExportProgress },
        );
        return pendingTextExport(exported, onExportProgress);
      },
      write: (dir, pending) => pending.write(dir),
      release: (pending) => pending.release(),
      load,
      report: (message) => this.options.onExport?.(message),
    });
  }

  /** The vocabulary chunks' scoring graphs from the disk cache when they match, or made now (all widths at once) and cached. */
  protected async loadPromptScorer(shape: PromptScoreShape): Promise<OrtPromptScorer> {
    const hash = await this.modelHash();
    const { name } = this.network.config;
    const key = promptScoreExportKey(shape);
    const head = required(this.network.classEmbed[this.network.classEmbed.length - 1], 'the classifier');
    return loadCachedPromptScorer({
      dirs: this.cacheDirs(hash, key),
      hash,
      shape,
      make: () => {
        this.options.onExport?.(`exporting ${name}'s vocabulary scoring to ONNX (${key}, once per model) ...`);
        return exportPromptScorer(head, shape, { name, hash });
      },
      threads: this.options.threads,
      report: (message) => this.options.onExport?.(message),
    });
  }

  /** From the disk cache (the model folder's, then the fallback) when it matches, or made now and cached. */
  protected loadNetwork(key: string, shape: ExportShape): Promise<OrtNetwork> {
    return this.networkExport(key, shape, (dir) => OrtNetwork.load(dir, { threads: this.options.threads }));
  }

  /**
   * The export's folder for one shape, from the disk cache or made now, with its files checked
   * but not opened in ONNX Runtime: what `ape serve` hands to the page.
   */
  exportFolder(shape: ExportShape): Promise<ExportFolder> {
    return this.networkExport(exportKey(shape), shape, checkExportFolder);
  }

  private async networkExport<L>(key: string, shape: ExportShape, load: (dir: string) => Promise<L>): Promise<L> {
    const hash = await this.modelHash();
    const { exporter, onExportProgress } = this.options;
    return loadOrMakeExport({
      dirs: this.cacheDirs(hash, key),
      inspect: (dir) => inspectCachedExport(dir, hash, shape),
      make: (): Promise<PendingExport> | PendingExport => {
        this.options.onExport?.(
          `exporting ${this.network.config.name} to ONNX for ${key} (once per input size and sentence bucket) ...`,
        );
        if (exporter) return exporter.network(shape, hash, onExportProgress);
        return pendingNetworkExport(
          exportNetwork(this.network, shape, hash, { onProgress: onExportProgress }),
          onExportProgress,
        );
      },
      write: (dir, pending) => pending.write(dir),
      release: (pending) => pending.release(),
      load,
      report: (message) => this.options.onExport?.(message),
    });
  }
}
