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
import { required } from '../util/checked.js';
import { moduleWorker } from '../util/module-worker.js';
import { SEMANTIC_BLOCK } from '../modeling/prompt-chunk-scores.js';
import type { QueryRangeJob } from '../modeling/query-range-scores.js';
import type { QueryRangeStats } from '../modeling/query-range-scores.js';
import type { QueryRangeThread } from '../modeling/tfjs-prompt-scorer.js';
import { isShared, sharedFloats } from '../util/shared-floats.js';

/** Slots of the control array shared with the thread: the job's description, then its state. */
export const CONTROL = {
  /** The number of the job to run (the caller stores it last, then Atomics.notify on it). */
  job: 0,
  /** The number of the last job the thread finished (Atomics.notify on it). */
  done: 1,
  /** 1 once the thread's TF.js is ready. */
  ready: 2,
  /** 1 when the last job failed (its message comes on the error port). */
  failed: 3,
  /** Tensors alive in the thread after its last job. */
  tensors: 4,
  /** The job: its queries, prompts, the scores' row width and the prompt rows' dimension. */
  n: 5,
  count: 6,
  width: 7,
  dim: 8,
  /** Where the job's unit rows lie in the input buffer (in floats) and how many values they are. */
  unitOffset: 9,
  unitValues: 10,
  /** Where the scores [rows, width] lie in the scores buffer (in floats), and the first row to write. */
  scoresOffset: 11,
  scoresRow: 12,
  /** How many buffers were sent to the thread so far (it reads them off the buffer port first). */
  buffers: 13,
} as const;
const CONTROL_SLOTS = 14;

/** What the thread is started with. */
export interface ScoringThreadData {
  control: SharedArrayBuffer;
  /** Where the thread posts a failed job's message. */
  errors: MessagePort;
  /** Where the thread receives the shared buffers it reads and writes (a BufferHandOver each). */
  buffers: MessagePort;
}

/**
 * A buffer the following jobs use: `input` holds the unit rows, `params` the query values (the
 * inverse temperature as a float64, then keys [n, dim], offsets [n], prior [n] as float32s),
 * `scores` the rows the thread writes, `stats` the rest of its answer (statsLayout).
 */
export interface BufferHandOver {
  slot: 'input' | 'params' | 'scores' | 'stats';
  buffer: SharedArrayBuffer;
}

/** Where the query values lie in the params buffer (in floats, after the float64 inverse temperature). */
export function paramsLayout(n: number, dim: number) {
  const keys = 2;
  const offsets = keys + n * dim;
  const prior = offsets + n;
  return { keys, offsets, prior, end: prior + n };
}

/** Where each statistic of the answer lies in the stats buffer (in floats). */
export function statsLayout(n: number, count: number) {
  const bound = count;
  const blockSums = bound + count;
  return { best: 0, bound, blockSums, end: blockSums + Math.ceil(count / SEMANTIC_BLOCK) * n };
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
  private buffers: MessagePort | null = null;
  private readonly control = new Int32Array(new SharedArrayBuffer(CONTROL_SLOTS * 4));
  /** Where unit rows that are not in shared memory are copied (the last, padded chunk; a list too long to keep). */
  private copies = sharedFloats(0);
  private params = new SharedArrayBuffer(0);
  /** Where the thread writes its scores when the caller's are not in shared memory. */
  private scores = sharedFloats(0);
  private stats = sharedFloats(0);
  /** The buffers the thread holds now, by slot. */
  private readonly held = new Map<BufferHandOver['slot'], SharedArrayBuffer>();
  private sent = 0;
  /** Unit row values copied into shared memory so far (a test of the shared path). */
  private copied = 0;
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
      const errors = new MessageChannel();
      const buffers = new MessageChannel();
      const data: ScoringThreadData = {
        control: this.control.buffer as SharedArrayBuffer,
        errors: errors.port2,
        buffers: buffers.port1,
      };
      const worker = moduleWorker(import.meta.url, 'scoring-worker', {
        workerData: data,
        transferList: [errors.port2, buffers.port1],
      });
      this.worker = worker;
      this.errors = errors.port1;
      this.buffers = buffers.port2;
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
      errors.port1.unref();
      buffers.port2.unref();
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

  /**
   * Describes the job in shared memory and wakes the thread (Atomics.notify: no message, so the
   * thread starts at once, whatever this thread's event loop does). Unit rows and scores already
   * in shared memory (the kept rows of a list, VocabularyUnitRows; the scorer's scores) are read
   * and written where they are; others go through the thread's own buffers.
   */
  begin(range: QueryRangeJob, scores: Float32Array, width: number, firstRow: number): () => QueryRangeStats {
    if (!this.worker || this.broken)
      throw new Error(`the scoring thread is not running${this.broken ? `: ${this.broken}` : ''}`);
    const n = range.offsets.length;
    const { count, unitPrompts } = range;
    const dim = range.keys.length / n;
    let unit = unitPrompts;
    if (!isShared(unit)) {
      if (this.copies.length < unit.length) this.copies = sharedFloats(unit.length);
      this.copies.set(unit);
      this.copied += unit.length;
      unit = this.copies;
    }
    const direct = isShared(scores);
    if (!direct && this.scores.length < n * width) this.scores = sharedFloats(n * width);
    const into = direct ? scores : this.scores;
    const at = paramsLayout(n, dim);
    if (this.params.byteLength < at.end * 4) this.params = new SharedArrayBuffer(at.end * 4);
    new Float64Array(this.params, 0, 1)[0] = range.inverseTemperature;
    const params = new Float32Array(this.params, 0, at.end);
    params.set(range.keys, at.keys);
    params.set(range.offsets, at.offsets);
    params.set(range.prior, at.prior);
    const layout = statsLayout(n, count);
    if (this.stats.length < layout.end) this.stats = sharedFloats(layout.end);
    this.hand('input', unit.buffer as SharedArrayBuffer);
    this.hand('params', this.params);
    this.hand('scores', into.buffer as SharedArrayBuffer);
    this.hand('stats', this.stats.buffer as SharedArrayBuffer);
    const c = this.control;
    c[CONTROL.n] = n;
    c[CONTROL.count] = count;
    c[CONTROL.width] = width;
    c[CONTROL.dim] = dim;
    c[CONTROL.unitOffset] = unit.byteOffset / 4;
    c[CONTROL.unitValues] = unitPrompts.length;
    c[CONTROL.scoresOffset] = into.byteOffset / 4;
    c[CONTROL.scoresRow] = direct ? firstRow : 0;
    c[CONTROL.buffers] = this.sent;
    const job = ++this.job;
    Atomics.store(c, CONTROL.job, job);
    Atomics.notify(c, CONTROL.job);
    const stats = this.stats;
    // Views of the shared answer: the caller reads them before it begins the next job.
    return () => {
      this.waitFor(job);
      if (!direct)
        for (let r = 0; r < n; r++) scores.set(into.subarray(r * width, r * width + count), (firstRow + r) * width);
      return {
        best: stats.subarray(layout.best, layout.bound),
        bound: stats.subarray(layout.bound, layout.blockSums),
        blockSums: stats.subarray(layout.blockSums, layout.end),
      };
    };
  }

  /** Jobs sent to the thread so far. */
  get jobs(): number {
    return this.job;
  }

  /** Unit row values copied into shared memory so far (rows already shared are not copied). */
  get copiedValues(): number {
    return this.copied;
  }

  /** Tensors alive in the thread after its last job (a test of its memory). */
  threadTensors(): number {
    return Atomics.load(this.control, CONTROL.tensors);
  }

  dispose(): void {
    this.broken ??= 'it was ended';
    // Ends the thread even while it waits for a job in Atomics.wait.
    void this.worker?.terminate();
    this.errors?.close();
    this.buffers?.close();
    this.worker = null;
    this.errors = null;
    this.buffers = null;
    this.held.clear();
  }

  /** Sends `buffer` to the thread for `slot` unless it holds it already (it keeps one per slot). */
  private hand(slot: BufferHandOver['slot'], buffer: SharedArrayBuffer): void {
    if (this.held.get(slot) === buffer) return;
    const message: BufferHandOver = { slot, buffer };
    required(this.buffers, 'the scoring thread: its buffer port').postMessage(message);
    this.held.set(slot, buffer);
    this.sent++;
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
    const message = receiveSoon(this.errors) as string | undefined;
    throw new Error(`the scoring thread: ${message ?? 'a job failed'}`);
  }
}

/** A pause of 1 ms without an event loop (Atomics.wait on a slot nobody changes). */
const idle = new Int32Array(new SharedArrayBuffer(4));

/**
 * The next message on `port`, read synchronously (receiveMessageOnPort). The sender posts it
 * before it signals through shared memory, so it is there; a few tries of 1 ms for safety.
 */
export function receiveSoon(port: MessagePort | null): unknown {
  for (let i = 0; port && i < 100; i++) {
    const got = receiveMessageOnPort(port);
    if (got) return got.message;
    Atomics.wait(idle, 0, 0, 1);
  }
  return undefined;
}
