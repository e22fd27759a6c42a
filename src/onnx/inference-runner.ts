import type { tf } from '../engine/engine.js';
import type { ModelBatch } from '../modeling/ape-network.js';
import type { PromptSet } from '../text/prompts.js';
import type { EncodeProgress } from '../text/prompt-embeddings.js';
import type { PromptChunkScorer } from '../modeling/prompt-chunk-scores.js';

/** The last decoder layer of a forward: what predict's post-processing reads. */
export interface NetworkOutputs {
  /** [B, Q, S] logits of the sentence prompts (fused with each image). */
  sentenceLogits: tf.Tensor3D;
  /** [B, Q, D] the last decoder layer's hidden queries: predict scores the vocabulary against them a chunk at a time. */
  hidden: tf.Tensor3D;
  /** [B, Q, 4] cxcywh in [0, 1] of each image's valid region. */
  boxes: tf.Tensor3D;
  /** [B, Q, h, w] mask logits at maskStride. */
  masks: tf.Tensor4D;
  maskStride: number;
}

/** A network forward for predict that runs somewhere other than the TF.js engine. */
export interface InferenceRunner {
  readonly name: string;
  /**
   * The network on `batch` with the sentences of `prompts`; the vocabulary does not enter the
   * network: its vectors are only put into the prompt cache (encoded if new) for the scoring after
   * it (predict passes none when the list's unit rows are kept).
   */
  run(batch: ModelBatch, prompts: PromptSet): Promise<NetworkOutputs>;
  /** Puts the vectors of prompts into the model's prompt cache, encoding the new ones on this engine. */
  encodePrompts(texts: readonly string[], onProgress?: EncodeProgress): Promise<void>;
  /** Scores vocabulary chunks against `queries` decoder queries on this engine (without it, TF.js scores them). */
  promptScorer?(queries: number): Promise<PromptChunkScorer>;
  release(): Promise<void>;
}
