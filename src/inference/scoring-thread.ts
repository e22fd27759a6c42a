/**
 * A second thread for the TF.js vocabulary scoring (Node worker_threads): it runs its own TF.js
 * wasm backend (scoring-worker.ts) and scores half of a chunk's queries (scoreQueryRange) while
 * the model's thread scores the other half, so that predict uses the second core that TF.js wasm
 * leaves idle. The scorer stays synchronous: the chunk goes to the thread through shared memory,
 * and the caller, once its own half is done, blocks in Atomics.wait (which Node allows on the
 * main thread) until the thread's half is there. Started at the first chunk it would take (not
 * before: 14 names never need it), ended with the model; it never keeps the process alive.
 */
import { type MessagePort, MessageChannel, receiveMessageOnPort, type Worker } from 'node:worker_threads';
import { moduleWorker } from '../util/module-worker.js';
import { SEMANTIC_BLOCK } from '../modeling/prompt-chunk-scores.js';
import type { QueryRangeJob } from '../modeling/query-range-scores.js';
import type { QueryRangeAnswer, QueryRangeThread } from '../modeling/tfjs-prompt-scorer.js';

/** Slots of the control array shared with the thread. */
export const CONTROL = {
  /** The number of the last job the thread finished (Atomics.notify on it). */
  done: 0,
  /** 1 once the thread's TF.js is ready. */
  ready: 1,
  /** 1 when the last job failed (its message comes on the error port). */
  failed: 2,
  /** Tensors alive in the thread after its last job. */
  tensors: 3,
} as const;

/** What the thread is started with. */
export interface ScoringThreadData {
  control: SharedArrayBuffer;
  /** Where the thread posts a failed job's message. */
  errors: MessagePort;
}

/** One job: the unit rows are in `input`, the answer goes to `output` (scores [n, width], best, bound, block sums). */
export interface ScoringThreadJob {
  job: number;
  input: SharedArrayBuffer;
  output: SharedArrayBuffer;
  keys: Float32Array;
  offsets: Float32Array;
  prior: Float32Array;
  /** How many values of `input` are the unit rows. */
  unitValues: number;
  count: number;
  width: number;
  inverseTemperature: number;
}

/** Where each part of the answer lies in the output buffer (in floats). */
export function answerLayout(n: number, count: number, width: number) {
  const best = n * width;
  const bound = best + count;
  const blockSums = bound + count;
  return { best, bound, blockSums, end: blockSums + Math.ceil(count / SEMANTIC_BLOCK) * n };
}

export interface ScoringThreadOptions {
  /** Smallest chunk the thread takes part of (default 1,024 prompts: below it the hand-off costs more than it saves). */
  minPrompts?: number;
  /** How long to wait for the thread's half of a chunk before giving up (default 60 s). */
  timeoutMs?: number;
}

export class ScoringThread implements QueryRangeThread {
  private worker: Worker | null = null;
  private errors: MessagePort | null = null;
  private readonly control = new Int32Array(new SharedArrayBuffer(4 * 4));
  private input = new SharedArrayBuffer(0);
  private output = new SharedArrayBuffer(0);
  private job = 0;
  /** Why the thread cannot be used (it failed to start, or to answer). */
  private broken: string | null = null;
  private started: Promise<void> | null = null;
  private readonly minPrompts: number;
  private readonly timeoutMs: number;

  constructor(options: ScoringThreadOptions = {}) {
    this.minPrompts = options.minPrompts ?? 1024;
    this.timeoutMs = options.timeoutMs ?? 60_000;
  }

  /** Starts the thread (once); resolves when its TF.js is ready, rejects when it cannot start. */
  start(): Promise<void> {
    this.started ??= new Promise<void>((resolve, reject) => {
      const channel = new MessageChannel();
      const data: ScoringThreadData = { control: this.control.buffer as SharedArrayBuffer, errors: channel.port2 };
      const worker = moduleWorker(import.meta.url, 'scoring-worker', {
        workerData: data,
        transferList: [channel.port2],
      });
      this.worker = worker;
      this.errors = channel.port1;
      const fail = (why: string) => {
        this.broken ??= why;
        reject(new Error(`the scoring thread: ${why}`));
      };
      worker.on('error', (e) => fail(e.message));
      worker.on('exit', (code) => fail(`it stopped (exit code ${code})`));
      // Held until it is ready (a caller may await that), then never again. After the listeners:
      // adding a 'message' listener refs the worker again.
      worker.on('message', () => {
        worker.unref();
        resolve();
      });
      channel.port1.unref();
    });
    // takes() starts it without waiting; a failure then only marks it broken.
    this.started.catch(() => undefined);
    return this.started;
  }

  takes(count: number): boolean {
    if (count < this.minPrompts || this.broken) return false;
    // The first chunks of the first large vocabulary run on the caller alone while the thread starts.
    if (!this.worker) void this.start();
    return Atomics.load(this.control, CONTROL.ready) === 1;
  }

  begin(range: QueryRangeJob, width: number): () => QueryRangeAnswer {
    const worker = this.worker;
    if (!worker || this.broken)
      throw new Error(`the scoring thread is not running${this.broken ? `: ${this.broken}` : ''}`);
    const n = range.offsets.length;
    const { count } = range;
    const layout = answerLayout(n, count, width);
    if (this.input.byteLength < range.unitPrompts.byteLength)
      this.input = new SharedArrayBuffer(range.unitPrompts.byteLength);
    if (this.output.byteLength < layout.end * 4) this.output = new SharedArrayBuffer(layout.end * 4);
    new Float32Array(this.input).set(range.unitPrompts);
    const job = ++this.job;
    const message: ScoringThreadJob = {
      job,
      input: this.input,
      output: this.output,
      keys: range.keys.slice(),
      offsets: range.offsets.slice(),
      prior: range.prior.slice(),
      unitValues: range.unitPrompts.length,
      count,
      width,
      inverseTemperature: range.inverseTemperature,
    };
    worker.postMessage(message);
    const output = this.output;
    return () => {
      this.waitFor(job);
      const values = new Float32Array(output, 0, layout.end);
      return {
        scores: values.subarray(0, n * width),
        best: values.slice(layout.best, layout.best + count),
        bound: values.slice(layout.bound, layout.bound + count),
        blockSums: values.slice(layout.blockSums, layout.end),
      };
    };
  }

  /** Jobs sent to the thread so far. */
  get jobs(): number {
    return this.job;
  }

  /** Tensors alive in the thread after its last job (a test of its memory). */
  threadTensors(): number {
    return Atomics.load(this.control, CONTROL.tensors);
  }

  dispose(): void {
    this.broken ??= 'it was ended';
    void this.worker?.terminate();
    this.errors?.close();
    this.worker = null;
    this.errors = null;
  }

  /** Blocks until the thread finished `job`; throws its error, or after the timeout. */
  private waitFor(job: number): void {
    const deadline = performance.now() + this.timeoutMs;
    for (;;) {
      const done = Atomics.load(this.control, CONTROL.done);
      if (done === job) break;
      const left = deadline - performance.now();
      if (left <= 0) {
        this.broken = `no answer within ${this.timeoutMs} ms`;
        this.dispose();
        throw new Error(`the scoring thread gave ${this.broken}`);
      }
      Atomics.wait(this.control, CONTROL.done, done, left);
    }
    if (Atomics.load(this.control, CONTROL.failed) !== 1) return;
    const port = this.errors;
    let message: string | undefined;
    // The thread posts the message before it marks the job done, so it is there (a few tries for safety).
    for (let i = 0; port && message === undefined && i < 100; i++) {
      message = (receiveMessageOnPort(port)?.message as string | undefined) ?? undefined;
      if (message === undefined) Atomics.wait(this.control, CONTROL.done, job, 1);
    }
    throw new Error(`the scoring thread: ${message ?? 'a job failed'}`);
  }
}
