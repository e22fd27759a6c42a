import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import type { InferenceEngineName } from '../inference/model-files.js';
import type { FromModelProcess, ImageTask, ModelProcessSpec, ToModelProcess } from './model-protocol.js';
import type { ImageOutcome } from './types.js';

/** How many times an image may take a model process down with it before it is called poisoned. */
const CRASHES_PER_IMAGE = 2;

/**
 * The process's entry: the compiled .js next to this file, or, when running from the TypeScript
 * sources (tests, tsx), the .ts file with tsx's loader, which a forked process does not inherit.
 */
function spawnModelProcess(spec: ModelProcessSpec): ChildProcess {
  const fromSource = import.meta.url.endsWith('.ts');
  const entry = new URL(fromSource ? './model-process.ts' : './model-process.js', import.meta.url);
  return fork(entry, [JSON.stringify(spec)], {
    execArgv: fromSource ? ['--import', 'tsx'] : [],
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

export interface ModelPoolOptions {
  /** Where the processes run the network (default loadModel's: ort). */
  engine?: InferenceEngineName;
  /** Told the processes' notes (an ONNX export being made on first use). */
  log?: (line: string) => void;
}

/** What a model process is asked: an image, or prompts to encode (the run's, before its images). */
type Job =
  | { kind: 'image'; task: ImageTask; resolve: (outcome: ImageOutcome) => void }
  | { kind: 'prompts'; texts: string[]; onProgress?: (done: number, total: number) => void; resolve: () => void };

interface Pending {
  job: Job;
  crashes: number;
  reject: (error: Error) => void;
}

interface Slot {
  child: ChildProcess;
  ready: Promise<void>;
  busy: { id: number; pending: Pending } | null;
}

/**
 * N processes, each holding the model, that annotate images one at a time each. A process that
 * dies is replaced; the image it held is tried again on another, and after CRASHES_PER_IMAGE
 * deaths it is answered as poisoned instead of being tried forever.
 */
export class ModelPool {
  private readonly slots: Slot[] = [];
  /** Processes that have answered 'ready'; only they take work. */
  private readonly loaded = new WeakSet<ChildProcess>();
  private readonly waiting: Pending[] = [];
  private nextId = 1;
  private closed = false;
  private failure: Error | null = null;
  /** Milliseconds each process took to load the model. */
  readonly loadMs: number[] = [];

  private readonly spec: ModelProcessSpec;

  constructor(
    private readonly modelDir: string,
    readonly size: number,
    private readonly options: ModelPoolOptions = {},
  ) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`a model pool needs at least one process, got ${size}`);
    // ONNX Runtime takes every core per session: N processes share them instead of fighting over them.
    const threads = size > 1 ? Math.max(1, Math.floor(availableParallelism() / size)) : undefined;
    this.spec = {
      modelDir,
      ...(options.engine !== undefined ? { engine: options.engine } : {}),
      ...(threads !== undefined ? { threads } : {}),
    };
  }

  /** Starts the processes; resolves once every one has loaded the model. */
  async start(): Promise<void> {
    for (let i = 0; i < this.size; i++) this.slots.push(this.spawn());
    await Promise.all(this.slots.map((s) => s.ready));
  }

  private spawn(): Slot {
    const child = spawnModelProcess(this.spec);
    const slot: Slot = { child, ready: Promise.resolve(), busy: null };
    slot.ready = new Promise<void>((resolve, reject) => {
      child.on('message', (message: FromModelProcess) => {
        if (message.type === 'ready') {
          this.loadMs.push(message.loadMs);
          this.loaded.add(child);
          resolve();
          this.dispatch();
        } else if (message.type === 'load-failed') {
          reject(new Error(`could not load the model from ${this.modelDir}: ${message.message}`));
        } else if (message.type === 'note') {
          this.options.log?.(`model process ${child.pid}: ${message.line}`);
        } else if (slot.busy && slot.busy.id === message.id) {
          const { job } = slot.busy.pending;
          if (message.type === 'encoding') {
            if (job.kind === 'prompts') job.onProgress?.(message.done, message.total);
            return;
          }
          const { pending } = slot.busy;
          slot.busy = null;
          if (message.type === 'done' && job.kind === 'image') job.resolve(message.outcome);
          else if (message.type === 'prompts-ready' && job.kind === 'prompts') {
            if (message.error === undefined) job.resolve();
            else pending.reject(new Error(`the model process could not encode the prompts: ${message.error}`));
          }
          this.dispatch();
        }
      });
      child.on('exit', (code, signal) => {
        reject(new Error(`a model process exited (${signal ?? `code ${code}`}) before it had loaded the model`));
        this.replace(slot, signal ?? `exit code ${code}`);
      });
    });
    slot.ready.catch((error: Error) => this.fail(error));
    return slot;
  }

  /** A process died: its image is retried (or declared poisoned) and a new process takes its place. */
  private replace(slot: Slot, how: string): void {
    const index = this.slots.indexOf(slot);
    if (index < 0 || this.closed) return;
    const held = slot.busy?.pending;
    slot.busy = null;
    if (held) {
      held.crashes++;
      if (held.crashes < CRASHES_PER_IMAGE) this.waiting.unshift(held);
      else if (held.job.kind === 'image')
        held.job.resolve({
          ok: false,
          reason: `${held.job.task.name}: the model process died on this image ${held.crashes} times (last: ${how})`,
        });
      else held.reject(new Error(`the model process died encoding the prompts ${held.crashes} times (last: ${how})`));
    }
    if (this.failure) return;
    this.slots[index] = this.spawn();
  }

  private fail(error: Error): void {
    if (this.failure || this.closed) return;
    this.failure = error;
    for (const p of this.waiting.splice(0)) p.reject(error);
    for (const s of this.slots) if (s.busy) s.busy.pending.reject(error);
  }

  /** Annotates one image on the next free process. */
  annotate(task: ImageTask): Promise<ImageOutcome> {
    return this.submit<ImageOutcome>((resolve) => ({ kind: 'image', task, resolve }));
  }

  /**
   * Puts the vectors of `texts` into one process's prompt cache and the prompt store, encoding
   * those neither holds there (`onProgress(done, total)` after each batch), so that the other
   * processes read them from the store instead of each encoding them at its first image.
   */
  preparePrompts(texts: readonly string[], onProgress?: (done: number, total: number) => void): Promise<void> {
    return this.submit<void>((resolve) => ({ kind: 'prompts', texts: [...texts], onProgress, resolve }));
  }

  private submit<T>(job: (resolve: (value: T) => void) => Job): Promise<T> {
    if (this.closed) return Promise.reject(new Error('the model pool is closed'));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ job: job(resolve), crashes: 0, reject });
      this.dispatch();
    });
  }

  /** The model processes now, and whether each holds an image (for logs, and tests that kill one). */
  get processes(): { pid: number; busy: boolean }[] {
    return this.slots.map((s) => ({ pid: s.child.pid ?? -1, busy: s.busy !== null }));
  }

  /** Images sent to a process or waiting for one. */
  get outstanding(): number {
    return this.waiting.length + this.slots.filter((s) => s.busy).length;
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.waiting.length === 0) return;
      if (slot.busy || !slot.child.connected || !this.loaded.has(slot.child)) continue;
      const pending = this.waiting.shift();
      if (pending === undefined) return;
      const id = this.nextId++;
      slot.busy = { id, pending };
      const { job } = pending;
      const message: ToModelProcess =
        job.kind === 'image' ? { type: 'image', id, task: job.task } : { type: 'prompts', id, texts: job.texts };
      slot.child.send(message);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.waiting.splice(0)) p.reject(new Error('the model pool is closed'));
    await Promise.all(
      this.slots.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.child.exitCode !== null || s.child.signalCode !== null) return resolve();
            s.child.once('exit', () => resolve());
            s.child.kill();
          }),
      ),
    );
  }
}
