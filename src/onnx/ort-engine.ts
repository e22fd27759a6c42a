/**
 * The network forward of predict on ONNX Runtime: exports are made on first use for each input
 * geometry and prompt count, cached on disk next to the model (checked against the model's hash)
 * and in memory; prompt embeddings still come from the model's text tower and prompt cache.
 * Outputs come back as TF.js tensors so that post-processing is the same code for both engines.
 */
import { join } from 'node:path';
import { tf } from '../engine/engine.js';
import type { ApeNetwork, ModelBatch } from '../modeling/ape-network.js';
import type { PromptSet } from '../text/prompts.js';
import { exportKey, exportNetwork, type ExportShape } from './export-network.js';
import { filesHash } from './export-files.js';
import { exportCacheDirs, loadCachedExport } from './export-cache.js';
import type { OrtNetwork, OrtNetworkOutputs } from './ort-network.js';
import type { InferenceRunner, NetworkOutputs } from './inference-runner.js';

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
   * its shape comes back (default DEFAULT_MAX_LOADED).
   */
  maxLoaded?: number;
  /** ONNX Runtime threads per session (default: all cores). */
  threads?: number;
  /** Told when an export is being made (it takes seconds for the tiny model, minutes for large ones). */
  onExport?: (message: string) => void;
}

/**
 * Vocabulary prompts never enter the fusion, so each logit column depends on its own prompt alone:
 * padding the vocabulary to a bucket and dropping the extra columns changes no result.
 */
export function vocabularyBucket(count: number): number {
  if (count === 0) return 0;
  let bucket = 8;
  while (bucket < count) bucket *= 2;
  return bucket;
}

/** Exports kept loaded when OrtEngineOptions.maxLoaded is not given. */
export const DEFAULT_MAX_LOADED = 4;

interface LoadedNetwork {
  net: Promise<OrtNetwork>;
  /** Calls running on it now. */
  users: number;
  /** Dropped from the loaded set: released when its last user is done. */
  evicted: boolean;
}

function releaseLoaded(entry: LoadedNetwork): void {
  entry.net.then((net) => net.release()).catch(() => undefined);
}

export class OrtEngine implements InferenceRunner {
  readonly name = 'ort';
  /** Loaded exports by shape key, least recently used first. */
  private readonly networks = new Map<string, LoadedNetwork>();
  private hash: Promise<string> | null = null;

  constructor(
    private readonly network: ApeNetwork,
    private readonly source: ModelSource,
    private readonly options: OrtEngineOptions = {},
  ) {}

  async run(batch: ModelBatch, prompts: PromptSet): Promise<NetworkOutputs> {
    const [b, h, w] = batch.images.shape;
    if (h !== w) throw new Error(`OrtEngine: the input must be square, got ${h}x${w}`);
    const vocabulary = prompts.vocabulary.length;
    const bucket = vocabularyBucket(vocabulary);
    const embeddings = tf.tidy(() => {
      const vocab = vocabulary > 0 ? this.network.encodePrompts(prompts.vocabulary) : null;
      // Padding rows repeat the last prompt (a zero vector would normalise to NaN).
      const padded =
        vocab && bucket > vocabulary
          ? tf.concat([vocab, tf.tile(tf.slice(vocab, [vocabulary - 1, 0], [1, -1]), [bucket - vocabulary, 1])], 0)
          : vocab;
      const sentences = prompts.sentences.length > 0 ? this.network.encodePrompts(prompts.sentences) : null;
      return {
        vocabulary: padded ? (padded.dataSync() as Float32Array) : undefined,
        sentences: sentences ? (sentences.dataSync() as Float32Array) : undefined,
      };
    });
    const pixels = batch.images.dataSync() as Float32Array;
    const perImage = h * w * 3;
    const outs: OrtNetworkOutputs[] = [];
    for (let i = 0; i < b; i++) {
      const shape = { size: h, valid: batch.sizes[i]!, vocabulary: bucket, sentences: prompts.sentences.length };
      const image = pixels.subarray(i * perImage, (i + 1) * perImage);
      outs.push(await this.withNetwork(shape, (net) => net.run({ image, ...embeddings })));
    }
    const p = vocabulary + prompts.sentences.length;
    return tf.tidy(() => {
      const stack = <T extends tf.Tensor>(pick: (o: OrtNetworkOutputs) => { data: Float32Array; dims: number[] }) =>
        tf.concat(
          outs.map((o) => tf.tensor(pick(o).data, pick(o).dims)),
          0,
        ) as T;
      let logits = stack<tf.Tensor3D>((o) => o.logits);
      if (bucket > vocabulary) {
        const [, q, total] = logits.shape;
        const keep = [tf.slice(logits, [0, 0, 0], [b, q, vocabulary])];
        if (total > bucket) keep.push(tf.slice(logits, [0, 0, bucket], [b, q, total - bucket]));
        logits = (keep.length === 1 ? keep[0]! : tf.concat(keep, 2)) as tf.Tensor3D;
      }
      if (logits.shape[2] !== p) throw new Error(`OrtEngine: ${logits.shape[2]} logit columns for ${p} prompts`);
      return {
        logits,
        boxes: stack<tf.Tensor3D>((o) => o.boxes),
        masks: stack<tf.Tensor4D>((o) => o.masks),
        maskStride: this.network.maskStride,
      };
    });
  }

  /** The shapes whose exports are loaded now, least recently used first. */
  get loaded(): string[] {
    return [...this.networks.keys()];
  }

  /**
   * Runs `use` on the loaded export for one shape: from memory, from the disk cache, or made now.
   * At most maxLoaded stay loaded: the least recently used beyond it is released once no call
   * uses it, so a server that sees many shapes does not grow by a session per shape.
   */
  private async withNetwork<T>(shape: ExportShape, use: (net: OrtNetwork) => Promise<T>): Promise<T> {
    const key = exportKey(shape);
    let entry = this.networks.get(key);
    if (entry) {
      this.networks.delete(key); // re-inserted below: the most recently used come last
    } else {
      const loading: LoadedNetwork = { net: this.load(key, shape), users: 0, evicted: false };
      loading.net.catch(() => {
        if (this.networks.get(key) === loading) this.networks.delete(key);
      });
      entry = loading;
    }
    this.networks.set(key, entry);
    const limit = Math.max(1, this.options.maxLoaded ?? DEFAULT_MAX_LOADED);
    for (const [k, old] of this.networks) {
      if (this.networks.size <= limit) break;
      this.networks.delete(k);
      old.evicted = true;
      if (old.users === 0) releaseLoaded(old);
    }
    entry.users++;
    try {
      return await use(await entry.net);
    } finally {
      entry.users--;
      if (entry.evicted && entry.users === 0) releaseLoaded(entry);
    }
  }

  private async load(key: string, shape: ExportShape): Promise<OrtNetwork> {
    this.hash ??= filesHash(this.source.files);
    const hash = await this.hash;
    return loadCachedExport({
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
          `exporting ${this.network.config.name} to ONNX for ${key} (once per image shape and prompt count) ...`,
        );
        return exportNetwork(this.network, shape, hash);
      },
      threads: this.options.threads,
      report: (message) => this.options.onExport?.(message),
    });
  }

  async release(): Promise<void> {
    const nets = await Promise.allSettled([...this.networks.values()].map((e) => e.net));
    this.networks.clear();
    await Promise.all(nets.flatMap((n) => (n.status === 'fulfilled' ? [n.value.release()] : [])));
  }
}
