/**
 * predict's network forward on an ONNX Runtime (Node's or the page's). Vocabulary prompts never
 * enter the fusion, so the graph takes none: it returns the hidden queries, which predict scores
 * against the vocabulary a chunk at a time (as on TF.js), and one export serves every vocabulary.
 * Sentence embeddings come from the model's text tower (TF.js) and prompt cache; one loaded export
 * per input geometry and sentence count; outputs handed back as TF.js tensors so that
 * post-processing is the same code for both engines. Where exports come from (a disk cache, or made in memory) is the
 * subclass's.
 */
import { tf } from '../engine/engine.js';
import type { ApeNetwork, ModelBatch } from '../modeling/ape-network.js';
import type { PromptSet } from '../text/prompts.js';
import { exportKey, type ExportShape } from './export-network.js';
import type { InferenceRunner, NetworkOutputs } from './inference-runner.js';
import type { OrtNetworkOutputs, SegmentedNetwork } from './segmented-network.js';
import { required } from '../util/checked.js';

/** The values of a tensor (disposed). */
function readValues(t: tf.Tensor): Float32Array {
  const values = t.dataSync() as Float32Array;
  t.dispose();
  return values;
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
        s > 0
          ? stack<tf.Tensor3D>((o) => required(o.logits, 'OrtEngine: the sentence logits'))
          : (tf.zeros([b, boxes.shape[1], 0]) as tf.Tensor3D);
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
