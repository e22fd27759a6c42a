/**
 * predict's network forward on an ONNX Runtime (Node's or the page's). Vocabulary prompts never
 * enter the fusion, so the graph takes none: it returns the hidden queries, which predict scores
 * against the vocabulary a chunk at a time (as on TF.js), and one export serves every vocabulary.
 * Prompts the model's prompt cache (and its store) lacks are encoded first by the text tower's
 * own export on the same runtime (ort-text-tower.ts), then served from the cache; one loaded
 * export per input size and sentence bucket (1, 2, 4, 8, ... rows), whatever the image's valid
 * region; outputs handed back as TF.js tensors so that post-processing is the same code for both
 * engines. Where exports come from (a disk cache, or made in memory) is the subclass's.
 */
import { tf } from '../engine/engine.js';
import type { ApeNetwork, ModelBatch } from '../modeling/ape-network.js';
import type { PromptSet } from '../text/prompts.js';
import type { EncodeProgress } from '../text/prompt-embeddings.js';
import { exportKey, type ExportShape } from './export-network.js';
import type { InferenceRunner, NetworkOutputs } from './inference-runner.js';
import type { OrtNetworkOutputs, SegmentedNetwork } from './segmented-network.js';
import { required } from '../util/checked.js';
import { readValues } from '../engine/read-values.js';
import type { OrtTextTower } from './ort-text-tower.js';
import type { OrtPromptScorer } from './ort-prompt-scorer.js';
import { PROMPT_SCORE_WIDTHS, type PromptScoreShape } from './prompt-score-export.js';
import { sentenceBucket } from '../modeling/sentence-buckets.js';

/** Exports kept loaded when no maxLoaded is given. */
export const DEFAULT_MAX_LOADED = 4;

interface LoadedNetwork {
  net: Promise<SegmentedNetwork>;
  /** Calls running on it now. */
  users: number;
  /** Dropped from the loaded set: released when its last user is done. */
  evicted: boolean;
}

function releaseLoaded(entry: LoadedNetwork): void {
  entry.net.then((net) => net.release()).catch(() => undefined);
}

export interface OrtRunnerOptions {
  /**
   * Exports kept loaded (ONNX Runtime sessions: about 130 MB each for the tiny model at 256); the
   * least recently used beyond it is released, and loaded again when its shape comes back.
   */
  maxLoaded?: number;
  /**
   * Free the text tower's TF.js weights once its export has encoded prompts (a frozen tower only:
   * ApeNetwork.releaseTextTower). Default false.
   */
  releaseTextWeights?: boolean;
}

export abstract class OrtRunner implements InferenceRunner {
  abstract readonly name: string;
  /** Loaded exports by shape key, least recently used first. */
  private readonly networks = new Map<string, LoadedNetwork>();
  private readonly maxLoaded: number;
  private textTower: Promise<OrtTextTower> | null = null;
  /** Prompt-score exports by query count (one in practice: the model's). */
  private readonly scorers = new Map<number, Promise<OrtPromptScorer>>();
  /** The last run's timings (ms): encoding its new prompts, and the network (summed over its images): segments and host selection. */
  lastTimings: OrtNetworkOutputs['timings'] & { prompts: number } = { segments: [], host: 0, prompts: 0 };

  constructor(
    protected readonly network: ApeNetwork,
    private readonly runnerOptions: OrtRunnerOptions = {},
  ) {
    this.maxLoaded = runnerOptions.maxLoaded ?? DEFAULT_MAX_LOADED;
  }

  /** The export for one shape, loaded into sessions (`key` is its exportKey). */
  protected abstract loadNetwork(key: string, shape: ExportShape): Promise<SegmentedNetwork>;

  /** The text tower's export, loaded (made on first use where there is none). */
  protected abstract loadTextTower(): Promise<OrtTextTower>;

  /** The prompt-score export for `shape` (a graph per chunk width), loaded (made on first use where there is none). */
  protected abstract loadPromptScorer(shape: PromptScoreShape): Promise<OrtPromptScorer>;

  /**
   * Scores vocabulary chunks on this runtime: the prompt-score export for `queries` queries and the
   * classifier's prompt size, loaded once (a failed load is tried again next time).
   */
  promptScorer(queries: number): Promise<OrtPromptScorer> {
    let scorer = this.scorers.get(queries);
    if (!scorer) {
      const head = required(this.network.classEmbed[this.network.classEmbed.length - 1], 'the classifier');
      const loading = this.loadPromptScorer({ queries, dim: head.embedDimLanguage, widths: [...PROMPT_SCORE_WIDTHS] });
      loading.catch(() => {
        if (this.scorers.get(queries) === loading) this.scorers.delete(queries);
      });
      this.scorers.set(queries, loading);
      scorer = loading;
    }
    return scorer;
  }

  /**
   * Puts the vectors of `texts` into the model's prompt cache: those neither it nor its store has
   * are encoded by the text tower's export (then, with releaseTextWeights, the TF.js tower is freed).
   */
  async encodePrompts(texts: readonly string[], onProgress?: EncodeProgress): Promise<void> {
    let encoded = false as boolean;
    await this.network.preparePrompts(
      texts,
      async (rows, progress) => {
        const vectors = await (await this.tower()).encode(rows, progress);
        encoded = true;
        return vectors;
      },
      onProgress,
    );
    if (encoded && this.runnerOptions.releaseTextWeights && !this.network.textTowerReleased)
      this.network.releaseTextTower(
        "engine 'ort' with releaseTextWeights: prompts are encoded by the text tower's ONNX export; load the model with engine 'tfjs' to encode on TF.js",
      );
  }

  /** The text tower's export, loaded once (a failed load is tried again next time). */
  private tower(): Promise<OrtTextTower> {
    if (!this.textTower) {
      const loading = this.loadTextTower();
      loading.catch(() => {
        if (this.textTower === loading) this.textTower = null;
      });
      this.textTower = loading;
    }
    return this.textTower;
  }

  async run(batch: ModelBatch, prompts: PromptSet): Promise<NetworkOutputs> {
    const [b, h, w] = batch.images.shape;
    if (h !== w) throw new Error(`OrtEngine: the input must be square, got ${h}x${w}`);
    const t0 = performance.now();
    await this.encodePrompts([...prompts.vocabulary, ...prompts.sentences]);
    const promptsMs = performance.now() - t0;
    const s = prompts.sentences.length;
    const sentences = s > 0 ? readValues(() => this.network.encodePrompts(prompts.sentences)) : undefined;
    const pixels = batch.images.dataSync() as Float32Array;
    const perImage = h * w * 3;
    const outs: OrtNetworkOutputs[] = [];
    // One export per input size and sentence bucket: every valid region runs on it, and the
    // padded sentence rows are masked out of the fusion (their logit columns come back dropped).
    const shape = { size: h, vocabulary: 0, sentences: sentenceBucket(s) };
    for (let i = 0; i < b; i++) {
      const image = pixels.subarray(i * perImage, (i + 1) * perImage);
      outs.push(await this.withNetwork(shape, (net) => net.run({ image, sentences, valid: batch.sizes[i]! })));
    }
    this.lastTimings = {
      segments: (outs[0]?.timings.segments ?? []).map((_, k) =>
        outs.reduce((a, o) => a + (o.timings.segments[k] ?? 0), 0),
      ),
      host: outs.reduce((a, o) => a + o.timings.host, 0),
      prompts: promptsMs,
    };
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

  /** The shapes whose exports are loaded now, least recently used first. */
  get loaded(): string[] {
    return [...this.networks.keys()];
  }

  /**
   * Runs `use` on the loaded export for one shape: from memory, or loaded now (a failed load is
   * tried again next time). At most maxLoaded stay loaded: the least recently used beyond it is
   * released once no call uses it, so a server that sees many shapes does not grow by a session per shape.
   */
  private async withNetwork<T>(shape: ExportShape, use: (net: SegmentedNetwork) => Promise<T>): Promise<T> {
    const key = exportKey(shape);
    let entry = this.networks.get(key);
    if (entry) {
      this.networks.delete(key); // re-inserted below: the most recently used come last
    } else {
      const loading: LoadedNetwork = { net: this.loadNetwork(key, shape), users: 0, evicted: false };
      loading.net.catch(() => {
        if (this.networks.get(key) === loading) this.networks.delete(key);
      });
      entry = loading;
    }
    this.networks.set(key, entry);
    const limit = Math.max(1, this.maxLoaded);
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

  async release(): Promise<void> {
    const text = this.textTower;
    this.textTower = null;
    await text?.then((t) => t.release()).catch(() => undefined);
    const scorers = await Promise.allSettled([...this.scorers.values()]);
    this.scorers.clear();
    await Promise.all(scorers.flatMap((s) => (s.status === 'fulfilled' ? [s.value.release()] : [])));
    const nets = await Promise.allSettled([...this.networks.values()].map((e) => e.net));
    this.networks.clear();
    await Promise.all(nets.flatMap((n) => (n.status === 'fulfilled' ? [n.value.release()] : [])));
  }
}
