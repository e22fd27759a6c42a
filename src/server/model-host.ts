import type { Worker } from 'node:worker_threads';
import { moduleWorker } from '../util/module-worker.js';
import { HttpError } from './http-error.js';
import type { InferenceEngineName } from '../inference/model-files.js';
import type { PredictionJson } from '../inference/prediction-json.js';
import type {
  EngineMemory,
  ExportFolderInfo,
  ExportRequest,
  ModelInfo,
  PromptVectors,
  WorkerExportJob,
  WorkerPredictJob,
  WorkerPromptsJob,
  WorkerReply,
  WorkerRequest,
} from './worker-protocol.js';
import { required } from '../util/checked.js';

export interface ModelWorkerData {
  modelDir: string;
  /** Input size instead of the model's (`ape serve --size`). */
  inputSize?: number;
  /** Where the network runs (default loadModel's: ort). */
  engine?: InferenceEngineName;
}

export interface ModelHostOptions extends Omit<ModelWorkerData, 'modelDir'> {
  /** Told the model thread's notes (an ONNX export being made on first use). */
  log?: (line: string) => void;
}

/** The worker's entry (model-worker.ts). */
const spawnModelWorker = (workerData: ModelWorkerData): Worker =>
  moduleWorker(import.meta.url, 'model-worker', { workerData });

export interface PredictOutcome {
  json: PredictionJson;
  inferenceMs: number;
}

/** A job's answer from the worker: its result reply, or its error message. */
type JobReply = Extract<
  WorkerReply,
  { type: 'result' } | { type: 'export-ready' } | { type: 'vectors' } | { type: 'error' }
>;

/** A reply of another kind than the job asked for (a bug between the two threads). */
const unexpected = (reply: JobReply, code: string) =>
  new HttpError(500, code, `the model thread answered '${reply.type}' to this request`);

interface Pending {
  settle: (reply: JobReply) => void;
  reject: (error: unknown) => void;
}

/**
 * Keeps the model in a worker thread, so the HTTP side stays responsive while it computes and a
 * run past its deadline can be stopped for real: the worker is terminated (its memory goes with
 * it) and a fresh one loads the model for the requests after it.
 */
export class ModelHost {
  private worker: Worker | null = null;
  private ready: Promise<ModelInfo> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private lastMemory: EngineMemory = { numTensors: 0, numBytes: 0 };
  private modelInfo: ModelInfo | null = null;
  private closed = false;
  restarts = 0;

  constructor(
    private readonly modelDir: string,
    private readonly options: ModelHostOptions = {},
  ) {}

  /** Loads the model (once); resolves with what the worker reports about it. */
  start(): Promise<ModelInfo> {
    if (this.closed) return Promise.reject(new HttpError(503, 'shutting-down', 'the server is shutting down'));
    if (this.ready) return this.ready;
    const { inputSize, engine } = this.options;
    const worker = spawnModelWorker({
      modelDir: this.modelDir,
      ...(inputSize !== undefined ? { inputSize } : {}),
      ...(engine !== undefined ? { engine } : {}),
    });
    this.worker = worker;
    this.ready = new Promise<ModelInfo>((resolve, reject) => {
      worker.on('message', (reply: WorkerReply) => {
        if (reply.type === 'ready') {
          this.modelInfo = reply.info;
          this.lastMemory = reply.memory;
          resolve(reply.info);
        } else if (reply.type === 'load-failed') {
          reject(new Error(`could not load the model from ${this.modelDir}: ${reply.message}`));
        } else if (reply.type === 'note') {
          this.options.log?.(reply.line);
        } else {
          this.lastMemory = reply.memory;
          const pending = this.pending.get(reply.id);
          if (!pending) return;
          this.pending.delete(reply.id);
          pending.settle(reply);
        }
      });
      worker.on('error', (error) => {
        reject(error);
        this.failAll(new HttpError(500, 'worker-failed', `the model worker failed: ${error.message}`));
      });
      worker.on('exit', (code) => {
        if (this.worker !== worker) return;
        reject(new Error(`the model worker exited with code ${code} before it was ready`));
        this.failAll(new HttpError(500, 'worker-exited', `the model worker stopped (exit code ${code})`));
        this.worker = null;
        this.ready = null;
      });
    });
    // A failed start is reported to whoever awaits it; keep it from becoming an unhandled rejection.
    this.ready.catch(() => undefined);
    return this.ready;
  }

  get info(): ModelInfo | null {
    return this.modelInfo;
  }

  /** TF.js tensor count and bytes in the worker, as of its last reply. */
  get memory(): EngineMemory {
    return this.lastMemory;
  }

  get loaded(): boolean {
    return this.worker !== null && this.modelInfo !== null;
  }

  async predict(job: Omit<WorkerPredictJob, 'type' | 'id'>, signal: AbortSignal): Promise<PredictOutcome> {
    const reply = await this.call(
      (id): WorkerPredictJob => ({ type: 'predict', id, ...job }),
      { code: 'prediction-failed', what: 'the model could not process the request' },
      signal,
      [job.image.data.buffer as ArrayBuffer],
    );
    if (reply.type !== 'result') throw unexpected(reply, 'prediction-failed');
    return { json: reply.json, inferenceMs: reply.inferenceMs };
  }

  /**
   * The vectors of prompt texts (`POST /v1/prompts`), from the model's prompt cache and its store,
   * those neither holds encoded now on the server's engine.
   */
  async encodePrompts(texts: string[], signal: AbortSignal): Promise<PromptVectors> {
    const reply = await this.call(
      (id): WorkerPromptsJob => ({ type: 'prompts', id, texts }),
      { code: 'prompts-failed', what: 'the prompts could not be encoded' },
      signal,
    );
    if (reply.type !== 'vectors') throw unexpected(reply, 'prompts-failed');
    return { vectors: reply.vectors, dim: reply.dim, encoded: reply.encoded };
  }

  /**
   * One of the model's ONNX exports (the network's for a shape, or the text tower's), found in its
   * cache or made now by the model thread (in turn with predictions: seconds for the tiny model,
   * about half a minute for the released ones at 1024).
   */
  async exportFolder(request: ExportRequest): Promise<ExportFolderInfo> {
    const reply = await this.call(
      (id): WorkerExportJob => ({ type: 'export', id, export: request }),
      { code: 'export-failed', what: 'the model could not be exported to ONNX' },
      null,
    );
    if (reply.type !== 'export-ready') throw unexpected(reply, 'export-failed');
    return reply.folder;
  }

  /**
   * Posts `message(id)` to the model thread and resolves with its answer; the thread's error is a
   * 500 `failed.code` saying `failed.what`. Past `signal` (a request's deadline) the run is stopped
   * for real: 504, and the worker is restarted.
   */
  private async call(
    message: (id: number) => WorkerRequest,
    failed: { code: string; what: string },
    signal: AbortSignal | null,
    transfer: ArrayBuffer[] = [],
  ): Promise<JobReply> {
    await this.start();
    if (signal?.aborted) throw new HttpError(504, 'timeout', 'the request timed out before it ran');
    const worker = required(this.worker, 'the model worker');
    const id = this.nextId++;
    return new Promise<JobReply>((resolve, reject) => {
      const onAbort = () => {
        if (!this.pending.has(id)) return;
        this.pending.delete(id);
        reject(new HttpError(504, 'timeout', 'the request timed out while the model was running'));
        this.restart();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        settle: (reply) => {
          signal?.removeEventListener('abort', onAbort);
          if (reply.type === 'error') reject(new HttpError(500, failed.code, `${failed.what}: ${reply.message}`));
          else resolve(reply);
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      });
      worker.postMessage(message(id), transfer);
    });
  }

  /** Stops the worker mid-computation and loads a fresh one. */
  private restart(): void {
    const old = this.worker;
    this.worker = null;
    this.ready = null;
    this.modelInfo = null;
    this.failAll(new HttpError(503, 'model-restarting', 'the model was restarted; try again'));
    this.restarts++;
    if (old) void old.terminate();
    if (!this.closed) this.start().catch(() => undefined);
  }

  private failAll(error: HttpError): void {
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    this.failAll(new HttpError(503, 'shutting-down', 'the server is shutting down'));
    if (worker) await worker.terminate();
  }
}
