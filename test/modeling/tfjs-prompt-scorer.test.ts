import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import { scoreQueryRange } from '../../src/modeling/query-range-scores.js';
import { type QueryRangeThread, tfjsPromptScorer } from '../../src/modeling/tfjs-prompt-scorer.js';
import { relativeError } from '../onnx/relative-error.js';
import { assertSameValues, chunkJob, DL, ownColumns, Q, recordedForm, scoringCase } from './prompt-scoring-cases.js';

await initEngine();

test('the TF.js scorer gives the recorded form scorePromptChunk: scores and best to the bit, the semantic sums within rounding; padding rows of any value change nothing', () => {
  const c = scoringCase();
  const scorer = tfjsPromptScorer(c.head);
  for (const [count, inverseTemperature, priorScale] of [
    [14, 60, 0], // a short vocabulary at the largest fixed shift, the first chunk
    [256, 1 / 0.06, 2], // one whole block, after other chunks
    [3000, 1 / 0.06, 40], // whole blocks and a partial one: width 3,072
    [4096, 1, 0.5], // a full chunk of the default size
  ] as const) {
    const job = chunkJob(c, count, inverseTemperature, priorScale);
    const want = recordedForm(c.head, job);
    const before = tf.memory().numTensors;
    const values = scorer.score(job);
    assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
    assertSameValues(values, want, job, `${count} prompts, 1/T ${inverseTemperature}`);
    // The zero prompt scores sigmoid(offset) for every query.
    for (let q = 0; q < Q; q++)
      assert.ok(Math.abs(values.scores[q * job.width + 1]! - 1 / (1 + Math.exp(-c.offsets[q]!))) < 1e-6);
    assert.ok(want.scores.some((s) => s > 0.5) && want.scores.some((s) => s < 0.5), 'scores on both sides of 0.5');
    if (count < job.width) {
      const zeroPadded = job.unitPrompts.slice();
      zeroPadded.fill(0, count * DL);
      // The values are the scorer's buffers, refilled by the next chunk: a copy to compare with.
      const first = structuredClone(values);
      const again = scorer.score({ ...job, unitPrompts: zeroPadded });
      assert.equal(again.scores, values.scores, 'the same buffer for the same width');
      assert.deepEqual(again, first, `${count} prompts: padding values`);
    }
  }
});

test('scoreQueryRange on a range of queries gives those rows of the whole chunk, and per-prompt parts that add up', () => {
  const c = scoringCase();
  const job = chunkJob(c, 600, 1 / 0.06, 1);
  const whole = tfjsPromptScorer(c.head).score(job);
  const scores = new Float32Array(Q * job.width);
  const range = (q0: number, q1: number) =>
    scoreQueryRange(
      {
        keys: c.keys.subarray(q0 * DL, q1 * DL),
        offsets: c.offsets.subarray(q0, q1),
        prior: job.prior.subarray(q0, q1),
        unitPrompts: job.unitPrompts.subarray(0, job.count * DL),
        count: job.count,
        inverseTemperature: job.inverseTemperature,
      },
      scores,
      job.width,
      q0,
    );
  const first = range(0, 4);
  const second = range(4, Q);
  assert.deepEqual(ownColumns(scores, Q, job.width, job.count), ownColumns(whole.scores, Q, job.width, job.count));
  const best = first.best.map((b, i) => Math.max(b, second.best[i]!));
  assert.deepEqual(best, whole.best.subarray(0, job.count));
  const bound = first.bound.map((b, i) => b + second.bound[i]!);
  assert.ok(relativeError(bound, whole.bound.subarray(0, job.count)) <= 1e-6);
  // Block-major [blocks, n]: block 1 of query 5 is the second range's row 1, column 1.
  assert.equal(second.blockSums.length, 3 * (Q - 4));
  assert.ok(Math.abs(second.blockSums[1 * (Q - 4) + 1]! / whole.blockSums[5 * (job.width / 256) + 1]! - 1) < 1e-6);
  assert.throws(
    () =>
      scoreQueryRange(
        {
          keys: c.keys,
          offsets: c.offsets,
          prior: job.prior,
          unitPrompts: job.unitPrompts,
          count: 10,
          inverseTemperature: 1,
        },
        scores,
        job.width,
        0,
      ),
    /scoreQueryRange: 12288 unit row values for 10 prompts of 16/,
  );
});

/** A second "thread" that scores its range at once on this one (the split's bookkeeping without a worker). */
function inlineThread(minPrompts: number): QueryRangeThread & { ranges: number[][] } {
  const ranges: number[][] = [];
  return {
    ranges,
    takes: (count) => count >= minPrompts,
    begin(job, scores, width, firstRow) {
      const stats = scoreQueryRange(job, scores, width, firstRow);
      ranges.push([job.offsets.length, job.count]);
      return () => stats;
    },
    dispose() {},
  };
}

test('with a second thread the scorer splits the queries in halves and joins them to the recorded values; small chunks stay on the caller', () => {
  const c = scoringCase();
  const thread = inlineThread(1024);
  const scorer = tfjsPromptScorer(c.head, thread);
  for (const [count, inverseTemperature] of [
    [100, 60],
    [1500, 60],
    [4096, 1 / 0.06],
  ] as const) {
    const job = chunkJob(c, count, inverseTemperature, 3);
    assertSameValues(scorer.score(job), recordedForm(c.head, job), job, `${count} prompts with a thread`);
  }
  // Q = 9: the caller scores 5 queries, the thread the other 4; the 100-prompt chunk never went there.
  assert.deepEqual(thread.ranges, [
    [4, 1500],
    [4, 4096],
  ]);
  // One query cannot be split.
  const one = scoringCase(1);
  const job = chunkJob(one, 2000, 2, 1);
  assertSameValues(tfjsPromptScorer(one.head, thread).score(job), recordedForm(one.head, job), job, 'one query');
  assert.equal(thread.ranges.length, 2);
});

test('an error of the caller half still waits for the thread before it is thrown', () => {
  const c = scoringCase();
  let waited = 0;
  const thread: QueryRangeThread = {
    takes: () => true,
    begin: () => () => {
      waited++;
      throw new Error('the thread failed too');
    },
    dispose() {},
  };
  const job = chunkJob(c, 2000, 2, 1);
  // Unit rows one value short: the caller's scoreQueryRange throws.
  const broken = { ...job, unitPrompts: job.unitPrompts.subarray(0, job.count * DL - 1) };
  assert.throws(() => tfjsPromptScorer(c.head, thread).score(broken), /scoreQueryRange: 31999 unit row values/);
  assert.equal(waited, 1);
});
