/**
 * predict's network forward on an ONNX Runtime (Node's or the page's): prompt embeddings from the
 * model's text tower (TF.js), the vocabulary padded to a bucket, one loaded export per input
 * geometry and prompt count, outputs handed back as TF.js tensors so that post-processing is the
 * same code for both engines. Where exports come from (a disk cache, or made in memory) is the
 * subclass's.
 */
import { tf } from '../engine/engine.js';
import type { ApeNetwork, ModelBatch } from '../modeling/ape-network.js';
import type { PromptSet } from '../text/prompts.js';
import { exportKey, type ExportShape } from './export-network.js';
import type { InferenceRunner, NetworkOutputs } from './inference-runner.js';
import type { OrtNetworkOutputs, SegmentedNetwork } from './segmented-network.js';

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

export abstract class OrtRunner implements InferenceRunner {
  abstract readonly name: string;
  private readonly networks = new Map<string, Promise<SegmentedNetwork>>();

  constructor(protected readonly network: ApeNetwork) {}

  /** The export for one shape, loaded into sessions (`key` is its exportKey). */
  protected abstract loadNetwork(key: string, shape: ExportShape): Promise<SegmentedNetwork>;

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

  /** The loaded export for one shape: made or loaded once, then kept (a failed load is tried again next time). */
  private networkFor(shape: ExportShape): Promise<SegmentedNetwork> {
    const key = exportKey(shape);
    let net = this.networks.get(key);
    if (!net) {
      net = this.loadNetwork(key, shape);
      this.networks.set(key, net);
      net.catch(() => this.networks.delete(key));
    }
    return net;
  }

  async release(): Promise<void> {
    const nets = await Promise.allSettled(this.networks.values());
    this.networks.clear();
    await Promise.all(nets.flatMap((n) => (n.status === 'fulfilled' ? [n.value.release()] : [])));
  }
}
