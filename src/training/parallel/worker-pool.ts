import type { Worker } from 'node:worker_threads';
import { moduleWorker } from '../../util/module-worker.js';
import type { TrainingBatch } from '../../data/batch.js';
import type { ApeConfig } from '../../modeling/config.js';
import type { WordTokenizerJson } from '../../text/word-tokenizer.js';
import type { MicroBatchResult, NegativeEmbeddings } from '../batch-gradients.js';
import type { CriterionConfig } from '../criterion.js';
import type { FromWorker, ToWorker } from './protocol.js';

/** The worker's entry (gradient-worker.ts). */
const spawn = (): Worker => moduleWorker(import.meta.url, 'gradient-worker');

/**
 * One gradient worker thread beside the main thread (which computes the other half of each
 * batch). The main thread owns the weights: each request carries the weights updated since the
 * previous one, so both copies stay identical.
 */
export class GradientWorker {
  private readonly worker: Worker;
  private pending: { resolve: (m: FromWorker) => void; reject: (e: Error) => void } | null = null;
  private failed: Error | null = null;
  /** Tensors alive in the worker after its last request. */
  lastNumTensors = 0;

  private constructor() {
    this.worker = spawn();
    this.worker.on('message', (m: FromWorker) => {
      const p = this.pending;
      this.pending = null;
      if (!p) return;
      if (m.type === 'error') p.reject(new Error(`gradient worker: ${m.message}`));
      else p.resolve(m);
    });
    this.worker.on('error', (e) => this.fail(e));
    this.worker.on('exit', (code) => {
      if (code !== 0) this.fail(new Error(`gradient worker exited with code ${code}`));
    });
  }

  private fail(e: Error): void {
    this.failed = e;
    const p = this.pending;
    this.pending = null;
    p?.reject(e);
  }

  private request(message: ToWorker, transfer: ArrayBuffer[] = []): Promise<FromWorker> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.pending) return Promise.reject(new Error('gradient worker: a request is already running'));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(message, transfer);
    });
  }

  /** `trained`: the names of the parameters to differentiate (the trainer's, frozen ones left out). */
  static async start(
    modelConfig: ApeConfig,
    tokenizer: WordTokenizerJson,
    params: Array<[string, Float32Array]>,
    criterion: CriterionConfig,
    trained: string[],
  ): Promise<GradientWorker> {
    const w = new GradientWorker();
    await w.request(
      { type: 'init', modelConfig, tokenizer, params, criterion, trained },
      params.map(([, d]) => d.buffer as ArrayBuffer),
    );
    return w;
  }

  /** Starts the gradients of `batch` in the worker (after loading `params`, when given). */
  compute(
    batch: TrainingBatch,
    negatives: NegativeEmbeddings | null,
    seed: number,
    params: Array<[string, Float32Array]> | null,
  ): Promise<MicroBatchResult> {
    const transfer = [batch.images.buffer as ArrayBuffer, ...(params ?? []).map(([, d]) => d.buffer as ArrayBuffer)];
    return this.request({ type: 'step', params, batch, negatives, seed }, transfer).then((m) => {
      if (m.type !== 'result') throw new Error(`gradient worker: unexpected reply '${m.type}'`);
      this.lastNumTensors = m.numTensors;
      return { grads: new Map(m.grads), losses: m.losses, phaseMs: m.phaseMs };
    });
  }

  async stop(): Promise<void> {
    await this.worker.terminate();
  }
}
