import type { TrainingBatch } from '../../data/batch.js';
import type { ApeConfig } from '../../modeling/config.js';
import type { WordTokenizerJson } from '../../text/word-tokenizer.js';
import type { NegativeEmbeddings } from '../batch-gradients.js';
import type { CriterionConfig } from '../criterion.js';

/** Messages between the trainer and a gradient worker thread. */
export type ToWorker =
  | {
      type: 'init';
      modelConfig: ApeConfig;
      tokenizer: WordTokenizerJson;
      /** Every parameter of the model (trainable or not), by name. */
      params: Array<[string, Float32Array]>;
      criterion: CriterionConfig;
      /** The parameters to differentiate (the trainer's trainable ones, frozen ones left out). */
      trained: string[];
    }
  | {
      type: 'step';
      /** Trainable parameters after the last update (null on the first step after init). */
      params: Array<[string, Float32Array]> | null;
      batch: TrainingBatch;
      negatives: NegativeEmbeddings | null;
      seed: number;
    };

export type FromWorker =
  | { type: 'ready' }
  | {
      type: 'result';
      grads: Array<[string, Float32Array]>;
      losses: Record<string, number>;
      phaseMs: { forward: number; losses: number; backward: number };
      /** Tensors alive in the worker after the request (constant from step to step unless something leaks). */
      numTensors: number;
    }
  | { type: 'error'; message: string; stack?: string };
