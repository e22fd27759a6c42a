/**
 * The network forward of predict on ONNX Runtime: exports are made on first use for each input
 * geometry and prompt count, cached on disk next to the model (checked against the model's hash)
 * and in memory; prompt embeddings still come from the model's text tower and prompt cache.
 * Outputs come back as TF.js tensors so that post-processing is the same code for both engines.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tf } from '../engine/engine.js';
import type { ApeNetwork, ModelBatch } from '../modeling/ape-network.js';
import type { PromptSet } from '../text/prompts.js';
import { exportKey, exportNetwork, MANIFEST_FILE, type ExportShape } from './export-network.js';
import { filesHash, writeNetworkExport } from './export-files.js';
import { OrtNetwork, type OrtNetworkOutputs } from './ort-network.js';
import { OPSET } from './kernel-ops.js';
import type { InferenceRunner, NetworkOutputs } from './inference-runner.js';

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

export class OrtEngine implements InferenceRunner {
  readonly name = 'ort';
  /** The last run's network timings (ms, summed over its images): segments and host selection. */
  lastTimings: OrtNetworkOutputs['timings'] = { segments: [], host: 0 };
  private readonly networks = new Map<string, Promise<OrtNetwork>>();
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
      const net = await this.networkFor({
        size: h,
        valid: batch.sizes[i]!,
        vocabulary: bucket,
        sentences: prompts.sentences.length,
      });
      outs.push(await net.run({ image: pixels.subarray(i * perImage, (i + 1) * perImage), ...embeddings }));
    }
    this.lastTimings = {
      segments: outs[0]!.timings.segments.map((_, s) => outs.reduce((a, o) => a + o.timings.segments[s]!, 0)),
      host: outs.reduce((a, o) => a + o.timings.host, 0),
    };
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

  /** The loaded export for one shape: from memory, from the disk cache when its hash matches, or made now. */
  private networkFor(shape: ExportShape): Promise<OrtNetwork> {
    const key = exportKey(shape);
    let net = this.networks.get(key);
    if (!net) {
      net = this.load(key, shape);
      this.networks.set(key, net);
      net.catch(() => this.networks.delete(key));
    }
    return net;
  }

  private async load(key: string, shape: ExportShape): Promise<OrtNetwork> {
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

  async release(): Promise<void> {
    const nets = await Promise.allSettled(this.networks.values());
    this.networks.clear();
    await Promise.all(nets.flatMap((n) => (n.status === 'fulfilled' ? [n.value.release()] : [])));
  }
}
