import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/engine.js';
import { tfjsPromptScorer } from '../../src/modeling/tfjs-prompt-scorer.js';
import { ScoringThread } from '../../src/inference/scoring-thread.js';
import { loadModel } from '../../src/inference/model-files.js';
import { readImage } from '../../src/io/image-node.js';
import { repoRoot } from '../cli/ape-cli.js';
import {
  assertSameValues,
  chunkJob,
  DL,
  ownColumns,
  Q,
  recordedForm,
  scoringCase,
} from '../modeling/prompt-scoring-cases.js';
import { queryRange, scoreQueryRange } from '../../src/modeling/query-range-scores.js';
import { isShared, sharedFloats } from '../../src/util/shared-floats.js';

await initEngine();

test('the scoring thread scores half of each large chunk on its own TF.js: the recorded values, the same as one thread, memory flat in both threads', async () => {
  const c = scoringCase();
  const thread = new ScoringThread({ minPrompts: 1024 });
  try {
    const scorer = tfjsPromptScorer(c.head, thread);
    const alone = tfjsPromptScorer(c.head);
    // Not started before a chunk it would take; the first such chunk starts it and runs alone.
    assert.equal(thread.takes(500), false);
    const first = chunkJob(c, 4096, 1 / 0.06, 2);
    assertSameValues(scorer.score(first), recordedForm(c.head, first), first, 'while the thread starts');
    await thread.start();
    assert.equal(thread.takes(4096), true);
    assert.equal(thread.takes(1023), false);
    let threadTensors = -1;
    for (const [count, inverseTemperature, priorScale] of [
      [4096, 1 / 0.06, 2],
      [1500, 60, 0],
      [100, 60, 0], // on the caller alone
      [3000, 1, 40],
      [4096, 1 / 0.06, 2],
    ] as const) {
      const job = chunkJob(c, count, inverseTemperature, priorScale);
      const before = tf.memory().numTensors;
      const values = scorer.score(job);
      assert.equal(tf.memory().numTensors, before, 'no tensor left in the caller');
      assertSameValues(values, recordedForm(c.head, job), job, `${count} prompts on two threads`);
      // Split or not, the scores are the same to the bit.
      assert.deepEqual(values.scores, alone.score(job).scores);
      if (threadTensors < 0) threadTensors = thread.threadTensors();
      assert.equal(thread.threadTensors(), threadTensors, 'no tensor left in the thread');
    }
    assert.equal(threadTensors, 0);
  } finally {
    thread.dispose();
  }
  assert.equal(thread.takes(4096), false, 'an ended thread takes nothing');
});

test('a failed job is reported with the thread error; an unstarted or ended thread refuses jobs', async () => {
  const c = scoringCase();
  const thread = new ScoringThread();
  const scores = new Float32Array(Q * 2048);
  try {
    const job = chunkJob(c, 2000, 2, 1);
    assert.throws(() => thread.begin(job, scores, job.width, 0), /the scoring thread is not running/);
    await thread.start();
    // Unit rows one value short of the chunk: the thread's scoreQueryRange refuses them.
    const range = (unitValues: number) => ({
      ...job,
      keys: c.keys.subarray(0, 2 * DL),
      offsets: c.offsets.subarray(0, 2),
      prior: job.prior.subarray(0, 2),
      unitPrompts: job.unitPrompts.subarray(0, unitValues),
    });
    assert.throws(
      thread.begin(range(2000 * DL - 1), scores, job.width, 0),
      /^Error: the scoring thread: scoreQueryRange: 31999 unit row values for 2000 prompts of 16$/,
    );
    // It still answers the next job.
    assert.equal(thread.begin(range(2000 * DL), scores, job.width, 0)().best.length, 2000);
  } finally {
    thread.dispose();
  }
  assert.throws(
    () => thread.begin(chunkJob(c, 2000, 2, 1), scores, 2048, 0),
    /the scoring thread is not running: it was ended/,
  );
});

test('no answer within the timeout ends the thread with an error', async () => {
  const c = scoringCase();
  const thread = new ScoringThread({ timeoutMs: 0 });
  try {
    await thread.start();
    const job = chunkJob(c, 4096, 2, 1);
    const range = queryRange(job, 5, Q);
    // The thread cannot have scored 4,096 prompts before the caller looks.
    assert.throws(
      thread.begin(range, new Float32Array(Q * job.width), job.width, 5),
      /^Error: the scoring thread gave no answer within 0 ms$/,
    );
    assert.equal(thread.takes(4096), false);
    assert.throws(
      () => thread.begin(range, new Float32Array(Q * job.width), job.width, 5),
      /is not running: no answer within 0 ms/,
    );
  } finally {
    thread.dispose();
  }
});

test('unit rows and scores in shared memory are read and written in place; others are copied', async () => {
  const c = scoringCase();
  const thread = new ScoringThread();
  try {
    await thread.start();
    const job = chunkJob(c, 3000, 1 / 0.06, 2);
    const alone = structuredClone(tfjsPromptScorer(c.head).score(job));
    const dl = job.unitPrompts.length / job.width;
    const sharedRows = sharedFloats(job.unitPrompts.length + 5 * dl);
    // At an offset in the shared buffer, as a chunk of a kept list is.
    sharedRows.set(job.unitPrompts, 5 * dl);
    const inPlace = sharedRows.subarray(5 * dl);
    for (const [unitPrompts, scores, copies] of [
      [inPlace, sharedFloats(Q * job.width), 0],
      [inPlace, new Float32Array(Q * job.width), 0],
      [job.unitPrompts, sharedFloats(Q * job.width), 3000 * dl],
    ] as const) {
      const before = thread.copiedValues;
      const own = scoreQueryRange(queryRange({ ...job, unitPrompts }, 0, 5), scores, job.width, 0);
      const stats = thread.begin(queryRange({ ...job, unitPrompts }, 5, Q), scores, job.width, 5)();
      assert.equal(
        thread.copiedValues - before,
        copies,
        `copies with ${isShared(unitPrompts) ? 'shared' : 'own'} rows`,
      );
      assert.deepEqual(ownColumns(scores, Q, job.width, 3000), ownColumns(alone.scores, Q, job.width, 3000));
      for (let p = 0; p < 3000; p++) assert.equal(Math.max(own.best[p]!, stats.best[p]!), alone.best[p]);
    }
  } finally {
    thread.dispose();
  }
});

test('a started scoring thread does not keep the process alive', () => {
  const code = `
    import { ScoringThread } from ${JSON.stringify(new URL('../../src/inference/scoring-thread.ts', import.meta.url).href)};
    const thread = new ScoringThread();
    await thread.start();
    console.log('started');
  `;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(run.signal, null, 'the process ended by itself');
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'started');
});

test('predict on TF.js with the scoring thread gives the results of one thread (tiny model, 2,500 names, three temperatures); the model ends the thread', async () => {
  const model = await loadModel(join(repoRoot, 'models/default'), {
    engine: 'tfjs',
    promptCache: false,
    scoringThread: false,
  });
  const thread = new ScoringThread();
  try {
    const scene = await readImage(join(repoRoot, 'examples/scene-2.png'));
    const syllables = ['ka', 'lo', 'mi', 'ne', 'su', 'ta', 'ri', 'vo'];
    const names = Array.from(
      { length: 2500 },
      (_, i) => `${syllables[i % 8]}${syllables[(i >> 3) % 8]}${syllables[(i >> 6) % 8]}${syllables[(i >> 9) % 8]}`,
    );
    const options = {
      vocabulary: ['circle', 'square', 'star', 'sky', 'grass', ...names],
      sentences: ['the red star'],
      threshold: 0.2,
      semanticThreshold: 0.1,
      promptChunk: 1024,
    };
    // 1 / 0.01 is past the fixed shift: that variant's statistics come from the scores alone.
    const variants = [{}, { semanticTemperature: 0.03, semanticBackground: 0.05 }, { semanticTemperature: 0.01 }];
    const alone = await model.predictVariantsOnEngine([scene], options, variants);
    await thread.start();
    model.setScoringThread(thread);
    const split = await model.predictVariantsOnEngine([scene], options, variants);
    assert.ok(
      alone[0]![0]!.instances.some((i) => i.promptIndex >= 2048),
      'instances from the last chunk',
    );
    assert.deepEqual(split, alone);
    // Chunks of 1,024, 1,024 and 482: the two full ones at the two fixed temperatures.
    assert.equal(thread.jobs, 4);
    assert.equal(thread.threadTensors(), 0);
    // A list first scored with the thread is kept in shared memory: its next predict hands the
    // thread every chunk's rows, the last padded one too, without a copy.
    const list = { ...options, vocabulary: [...options.vocabulary, 'one more'] };
    const first = await model.predictVariantsOnEngine([scene], list, [{}]);
    const copied = thread.copiedValues;
    assert.ok(copied > 0, 'the chunks normalised by the first predict are copied');
    assert.deepEqual(await model.predictVariantsOnEngine([scene], list, [{}]), first);
    assert.equal(thread.copiedValues, copied, 'no copy once the list is kept');
    assert.equal(thread.jobs, 8, 'the two large chunks of each predict on the thread');
  } finally {
    model.dispose();
  }
  assert.equal(thread.takes(4096), false, 'disposing the model ended its thread');
});
