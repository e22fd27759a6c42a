import { test } from 'node:test';
import assert from 'node:assert/strict';
import { iouAssign, decoderAssignOptions, encoderAssignOptions } from '../../src/training/assign/deta-assigner.js';
import { Rng } from '../../src/util/random.js';

// cxcywh helpers: a box of width/height 0.2 at (cx, 0.5).
const box = (cx: number, w = 0.2) => [cx, 0.5, w, 0.2];

test('one-to-many: proposals with IoU >= 0.6 are positives, at most k per target, low-quality matches kept', () => {
  const target = box(0.5);
  // IoU with the target for a shift d of a 0.2-wide box: (0.2 - d) / (0.2 + d).
  const proposals = [box(0.5), box(0.52), box(0.54), box(0.56), box(0.58), box(0.9), box(0.6), box(0.2)].flat();
  // IoUs: 1, 0.818, 0.667, 0.538, 0.429, 0, 0.333, 0
  const m = iouAssign(proposals, target, decoderAssignOptions(100), new Rng(1));
  assert.deepEqual(m, { queries: [0, 1, 2], targets: [0, 0, 0] });
  const k2 = iouAssign(proposals, target, { ...decoderAssignOptions(100), topK: 2 }, new Rng(1));
  assert.deepEqual(k2.queries, [0, 1]);
  // A far target with no proposal above 0.6 still gets its best one (low-quality match).
  const far = iouAssign([box(0.5), box(0.75)].flat(), box(0.8), decoderAssignOptions(100), new Rng(1));
  assert.deepEqual(far, { queries: [1], targets: [0] });
  const none = iouAssign(
    [box(0.5), box(0.75)].flat(),
    box(0.8),
    { ...decoderAssignOptions(100), allowLowQuality: false },
    new Rng(1),
  );
  assert.deepEqual(none, { queries: [], targets: [] });
});

test('one-to-many: each proposal goes to its highest-IoU target; positives capped by the sampling fraction', () => {
  const targets = [box(0.3), box(0.7)].flat();
  const proposals = [box(0.31), box(0.69), box(0.3), box(0.7)].flat();
  const m = iouAssign(proposals, targets, decoderAssignOptions(100), new Rng(1));
  assert.deepEqual(m, { queries: [0, 1, 2, 3], targets: [0, 1, 0, 1] });
  // batch 4 x fraction 0.25 = 1 positive at most.
  const capped = iouAssign(proposals, targets, decoderAssignOptions(4), new Rng(1));
  assert.equal(capped.queries.length, 1);
});

test('encoder assignment: 0.7 for positives, with low-quality matches', () => {
  const m = iouAssign([box(0.5), box(0.53), box(0.56)].flat(), box(0.5), encoderAssignOptions(), new Rng(1));
  // IoUs 1, 0.739, 0.538: the first two.
  assert.deepEqual(m.queries, [0, 1]);
});
