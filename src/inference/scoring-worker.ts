/**
 * The scoring thread (scoring-thread.ts): its own TF.js wasm backend, scoring the query ranges it
 * is sent (scoreQueryRange) into shared memory. Not meant to be run on its own.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initEngine, tf } from '../engine/engine.js';
import { scoreQueryRange } from '../modeling/query-range-scores.js';
import { required } from '../util/checked.js';
import { answerLayout, CONTROL, type ScoringThreadData, type ScoringThreadJob } from './scoring-thread.js';

const port = required(parentPort, 'scoring-worker: the parent port (it must run as a worker thread)');
const { control: controlBuffer, errors } = workerData as ScoringThreadData;
const control = new Int32Array(controlBuffer);

function score(m: ScoringThreadJob): void {
  const n = m.offsets.length;
  const layout = answerLayout(n, m.count, m.width);
  const output = new Float32Array(m.output, 0, layout.end);
  const stats = scoreQueryRange(
    {
      keys: m.keys,
      offsets: m.offsets,
      prior: m.prior,
      unitPrompts: new Float32Array(m.input, 0, m.unitValues),
      count: m.count,
      inverseTemperature: m.inverseTemperature,
    },
    output,
    m.width,
    0,
  );
  output.set(stats.best, layout.best);
  output.set(stats.bound, layout.bound);
  output.set(stats.blockSums, layout.blockSums);
}

await initEngine({ backend: 'wasm' });
port.on('message', (m: ScoringThreadJob) => {
  let failed = 0;
  try {
    score(m);
  } catch (e) {
    failed = 1;
    errors.postMessage(e instanceof Error ? e.message : String(e));
  }
  Atomics.store(control, CONTROL.failed, failed);
  Atomics.store(control, CONTROL.tensors, tf.memory().numTensors);
  Atomics.store(control, CONTROL.done, m.job);
  Atomics.notify(control, CONTROL.done);
});
Atomics.store(control, CONTROL.ready, 1);
port.postMessage('ready');
