/**
 * The scoring thread (scoring-thread.ts): its own TF.js wasm backend, scoring the query ranges it
 * is given (scoreQueryRange) into shared memory. It waits for each job in Atomics.wait on the
 * control array, not in its event loop: the caller describes the job in shared memory and
 * notifies, so the job starts at once. Not meant to be run on its own.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initEngine, tf } from '../engine/engine.js';
import { scoreQueryRange } from '../modeling/query-range-scores.js';
import { required } from '../util/checked.js';
import {
  type BufferHandOver,
  CONTROL,
  paramsLayout,
  receiveSoon,
  type ScoringThreadData,
  statsLayout,
} from './scoring-thread.js';

const port = required(parentPort, 'scoring-worker: the parent port (it must run as a worker thread)');
const { control: controlBuffer, errors, buffers } = workerData as ScoringThreadData;
const control = new Int32Array(controlBuffer);
const held: Record<BufferHandOver['slot'], SharedArrayBuffer> = {
  input: new SharedArrayBuffer(0),
  params: new SharedArrayBuffer(0),
  scores: new SharedArrayBuffer(0),
  stats: new SharedArrayBuffer(0),
};
let received = 0;

/** Takes the buffers sent since the last job (the caller posts them before it notifies). */
function takeBuffers(): void {
  const sent = control[CONTROL.buffers]!;
  while (received < sent) {
    const message = receiveSoon(buffers) as BufferHandOver | undefined;
    if (!message) throw new Error(`scoring-worker: buffer ${received + 1} of ${sent} did not arrive`);
    held[message.slot] = message.buffer;
    received++;
  }
}

function score(): void {
  takeBuffers();
  const n = control[CONTROL.n]!;
  const count = control[CONTROL.count]!;
  const width = control[CONTROL.width]!;
  const dim = control[CONTROL.dim]!;
  const at = paramsLayout(n, dim);
  const params = new Float32Array(held.params, 0, at.end);
  const layout = statsLayout(n, count);
  const stats = scoreQueryRange(
    {
      keys: params.subarray(at.keys, at.offsets),
      offsets: params.subarray(at.offsets, at.prior),
      prior: params.subarray(at.prior, at.end),
      unitPrompts: new Float32Array(held.input, control[CONTROL.unitOffset]! * 4, control[CONTROL.unitValues]!),
      count,
      inverseTemperature: new Float64Array(held.params, 0, 1)[0]!,
    },
    new Float32Array(held.scores, control[CONTROL.scoresOffset]! * 4),
    width,
    control[CONTROL.scoresRow]!,
  );
  const output = new Float32Array(held.stats, 0, layout.end);
  output.set(stats.best, layout.best);
  output.set(stats.bound, layout.bound);
  output.set(stats.blockSums, layout.blockSums);
}

await initEngine({ backend: 'wasm' });
Atomics.store(control, CONTROL.ready, 1);
port.postMessage('ready');
// The thread's life from here: wait for a job, run it, signal it done (it ends when terminated).
for (let last = 0; ; ) {
  Atomics.wait(control, CONTROL.job, last);
  const job = Atomics.load(control, CONTROL.job);
  if (job === last) continue;
  last = job;
  let failed = 0;
  try {
    score();
  } catch (e) {
    failed = 1;
    errors.postMessage(e instanceof Error ? e.message : String(e));
  }
  Atomics.store(control, CONTROL.failed, failed);
  Atomics.store(control, CONTROL.tensors, tf.memory().numTensors);
  Atomics.store(control, CONTROL.done, job);
  Atomics.notify(control, CONTROL.done);
}
