import { HttpError } from './http-error.js';

/** Runs one job; must settle soon after `signal` aborts (the job's time is up). */
export type JobRunner<J, R> = (job: J, signal: AbortSignal) => Promise<R>;

export interface WorkQueueOptions {
  /** Jobs that may wait while one runs; a job arriving when that many wait is refused (503). */
  capacity: number;
  /** From the request's arrival to its result; a job past it is dropped from the queue or aborted (504). */
  timeoutMs: number;
}

interface Entry<J, R> {
  job: J;
  resolve: (value: R) => void;
  reject: (error: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
  controller: AbortController;
  settled: boolean;
}

export interface QueueStats {
  running: number;
  waiting: number;
  capacity: number;
}

/**
 * One-at-a-time execution of jobs in arrival order (one model, one forward pass at a time), with
 * a bounded waiting line and a deadline per job. A job whose deadline passes while it waits is
 * removed without running; one whose deadline passes while it runs is aborted through its signal.
 */
export class WorkQueue<J, R> {
  private readonly waiting: Entry<J, R>[] = [];
  private running: Entry<J, R> | null = null;
  private closedWith: HttpError | null = null;

  constructor(
    private readonly run: JobRunner<J, R>,
    private readonly options: WorkQueueOptions,
  ) {}

  stats(): QueueStats {
    return { running: this.running ? 1 : 0, waiting: this.waiting.length, capacity: this.options.capacity };
  }

  /**
   * Queues a job. `arrivedAt` (a performance.now() time) is when its request arrived: the
   * deadline counts from there, so time spent reading the body already counts against it.
   */
  submit(job: J, arrivedAt = performance.now()): Promise<R> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const left = arrivedAt + this.options.timeoutMs - performance.now();
    if (left <= 0)
      return Promise.reject(
        new HttpError(
          504,
          'timeout',
          `the request took longer than the limit of ${this.options.timeoutMs} ms before it was queued`,
        ),
      );
    if (this.running && this.waiting.length >= this.options.capacity) {
      return Promise.reject(
        new HttpError(
          503,
          'queue-full',
          `the server is busy: ${this.waiting.length} requests are already waiting (limit ${this.options.capacity}); try again shortly`,
        ),
      );
    }
    return new Promise<R>((resolve, reject) => {
      const entry: Entry<J, R> = {
        job,
        resolve,
        reject,
        controller: new AbortController(),
        settled: false,
        timer: setTimeout(() => this.expire(entry), left),
      };
      this.waiting.push(entry);
      this.pump();
    });
  }

  /**
   * Refuses new jobs and those still waiting with `error` from now on (the running one is left to
   * finish or to its deadline).
   */
  close(error: HttpError): void {
    this.closedWith = error;
    for (const entry of this.waiting.splice(0)) this.settle(entry, () => entry.reject(error));
  }

  private expire(entry: Entry<J, R>): void {
    const index = this.waiting.indexOf(entry);
    if (index >= 0) this.waiting.splice(index, 1);
    this.settle(entry, () =>
      entry.reject(
        new HttpError(
          504,
          'timeout',
          `the request took longer than the limit of ${this.options.timeoutMs} ms${index >= 0 ? ' waiting in the queue' : ''}`,
        ),
      ),
    );
    // A running job learns of it through its signal; the queue moves on once it settles.
    entry.controller.abort();
  }

  private settle(entry: Entry<J, R>, action: () => void): void {
    if (entry.settled) return;
    entry.settled = true;
    clearTimeout(entry.timer);
    action();
  }

  private pump(): void {
    if (this.running) return;
    const entry = this.waiting.shift();
    if (!entry) return;
    this.running = entry;
    let outcome: Promise<R>;
    try {
      outcome = this.run(entry.job, entry.controller.signal);
    } catch (error) {
      outcome = Promise.reject(error);
    }
    outcome
      .then(
        (value) => this.settle(entry, () => entry.resolve(value)),
        (error) => this.settle(entry, () => entry.reject(error)),
      )
      .finally(() => {
        this.running = null;
        this.pump();
      });
  }
}
