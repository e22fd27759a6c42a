/**
 * The network forward of predict on ONNX Runtime: exports are made on first use for each input
 * geometry and prompt count, cached on disk next to the model (checked against the model's hash)
 * and in memory. Vocabulary prompts never enter the fusion, so the graph takes none: it returns
 * the hidden queries, which predict scores the vocabulary against a chunk at a time (as on TF.js),
 * and one export serves every vocabulary. Sentence embeddings come from the model's prompt cache.
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

/** The values of a tensor (disposed). */
function readValues(t: tf.Tensor): Float32Array {
  const values = t.dataSync() as Float32Array;
  t.dispose();
  return values;
}

export class OrtEngine implements InferenceRunner {
  readonly name = 'ort';
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
    const s = prompts.sentences.length;
    const sentences = s > 0 ? readValues(this.network.encodePrompts(prompts.sentences)) : undefined;
    const pixels = batch.images.dataSync() as Float32Array;
    const perImage = h * w * 3;
    const outs: OrtNetworkOutputs[] = [];
    for (let i = 0; i < b; i++) {
      const net = await this.networkFor({ size: h, valid: batch.sizes[i]!, vocabulary: 0, sentences: s });
      outs.push(await net.run({ image: pixels.subarray(i * perImage, (i + 1) * perImage), sentences }));
    }
    return tf.tidy(() => {
      const stack = <T extends tf.Tensor>(pick: (o: OrtNetworkOutputs) => { data: Float32Array; dims: number[] }) =>
        tf.concat(
          outs.map((o) => tf.tensor(pick(o).data, pick(o).dims)),
          0,
        ) as T;
      const boxes = stack<tf.Tensor3D>((o) => o.boxes);
      const sentenceLogits =
        s > 0 ? stack<tf.Tensor3D>((o) => o.logits!) : (tf.zeros([b, boxes.shape[1], 0]) as tf.Tensor3D);
      if (sentenceLogits.shape[2] !== s)
        throw new Error(`OrtEngine: ${sentenceLogits.shape[2]} logit columns for ${s} sentences`);
      return {
        sentenceLogits,
        hidden: stack<tf.Tensor3D>((o) => o.hidden),
        boxes,
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
