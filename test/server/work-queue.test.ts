import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkQueue } from '../../src/server/work-queue.js';
import { HttpError } from '../../src/server/http-error.js';

/** A job runner whose jobs finish when the test says so. */
function controlledRunner(options: { ignoreAbort?: boolean } = {}) {
  const started: string[] = [];
  const finish = new Map<string, (v: string) => void>();
  const aborted: string[] = [];
  const run = (job: string, signal: AbortSignal) =>
    new Promise<string>((resolve, reject) => {
      started.push(job);
      finish.set(job, (v) => resolve(v));
      signal.addEventListener('abort', () => {
        aborted.push(job);
        if (!options.ignoreAbort) reject(new Error('aborted'));
      });
    });
  return { run, started, finish, aborted };
}

const tick = () => new Promise((r) => setImmediate(r));
const isHttp = (status: number) => (e: unknown) => e instanceof HttpError && e.status === status;

test('one job at a time, in arrival order; a full line is refused with 503', async () => {
  const r = controlledRunner();
  const q = new WorkQueue(r.run, { capacity: 2, timeoutMs: 10_000 });
  const a = q.submit('a');
  const b = q.submit('b');
  const c = q.submit('c');
  await assert.rejects(q.submit('d'), isHttp(503));
  assert.deepEqual(q.stats(), { running: 1, waiting: 2, capacity: 2 });
  await tick();
  assert.deepEqual(r.started, ['a']);
  r.finish.get('a')!('A');
  assert.equal(await a, 'A');
  await tick();
  assert.deepEqual(r.started, ['a', 'b']);
  r.finish.get('b')!('B');
  await tick();
  r.finish.get('c')!('C');
  assert.deepEqual([await b, await c], ['B', 'C']);
  await tick();
  assert.deepEqual(q.stats(), { running: 0, waiting: 0, capacity: 2 });
});

test('deadlines: a waiting job is dropped unrun, a running one is told to stop (504); the queue goes on', async () => {
  // The running job keeps going after its abort (as a computation that cannot be interrupted
  // would), so the one behind it passes its deadline while still waiting.
  const r = controlledRunner({ ignoreAbort: true });
  const q = new WorkQueue(r.run, { capacity: 4, timeoutMs: 50 });
  const a = q.submit('a');
  const b = q.submit('b');
  await assert.rejects(a, (e) => isHttp(504)(e) && !/waiting/.test((e as Error).message));
  await assert.rejects(b, (e) => isHttp(504)(e) && /waiting in the queue/.test((e as Error).message));
  assert.deepEqual(r.aborted, ['a']);
  assert.deepEqual(q.stats(), { running: 1, waiting: 0, capacity: 4 });
  const c = q.submit('c');
  r.finish.get('a')!('late');
  await tick();
  assert.deepEqual(r.started, ['a', 'c'], 'b never ran');
  r.finish.get('c')!('C');
  assert.equal(await c, 'C');
});

test('a runner that throws fails only its own job', async () => {
  let n = 0;
  const q = new WorkQueue<number, number>(
    async (job) => {
      n++;
      if (job < 0) throw new Error(`bad job ${job}`);
      return job * 2;
    },
    { capacity: 4, timeoutMs: 1000 },
  );
  const results = await Promise.allSettled([q.submit(1), q.submit(-1), q.submit(3)]);
  assert.deepEqual(
    results.map((x) => (x.status === 'fulfilled' ? x.value : (x.reason as Error).message)),
    [2, 'bad job -1', 6],
  );
  assert.equal(n, 3);
});

test("the deadline counts from the request's arrival, not from when it was queued", async () => {
  const r = controlledRunner();
  const q = new WorkQueue(r.run, { capacity: 2, timeoutMs: 200 });
  // The request arrived 150 ms before it was queued (reading its body): 50 ms are left.
  const t0 = performance.now();
  const late = q.submit('late', performance.now() - 150);
  await assert.rejects(late, isHttp(504));
  const waited = performance.now() - t0;
  assert.ok(waited < 150, `expired after ${waited.toFixed(0)} ms; the deadline was 50 ms away`);
  // One that arrived past its deadline already is refused without running.
  const r2 = controlledRunner();
  const q2 = new WorkQueue(r2.run, { capacity: 2, timeoutMs: 100 });
  await assert.rejects(q2.submit('stale', performance.now() - 500), isHttp(504));
  await tick();
  assert.deepEqual(r2.started, []);
});

test('close refuses new jobs and the waiting ones; the running one finishes', async () => {
  const r = controlledRunner();
  const q = new WorkQueue(r.run, { capacity: 4, timeoutMs: 10_000 });
  const a = q.submit('a');
  const b = q.submit('b');
  await tick();
  q.close(new HttpError(503, 'shutting-down', 'bye'));
  await assert.rejects(b, (e: unknown) => e instanceof HttpError && e.code === 'shutting-down');
  await assert.rejects(q.submit('c'), (e: unknown) => e instanceof HttpError && e.code === 'shutting-down');
  r.finish.get('a')!('A');
  assert.equal(await a, 'A');
  await tick();
  assert.deepEqual(r.started, ['a']);
});
