import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MultiDatasetSampler } from '../../src/data/sampler/multi-dataset-sampler.js';
import { defaultLossSwitches } from '../../src/data/sampler/loss-switches.js';

test('sampler draws datasets by weight and walks each through whole epochs', () => {
  const s = new MultiDatasetSampler(
    [
      { name: 'big', size: 10, weight: 1 },
      { name: 'small', size: 3, weight: 0.25 },
    ],
    2,
    42,
  );
  const counts = [0, 0];
  const seen: number[][] = [[], []];
  for (let i = 0; i < 1000; i++) {
    const d = s.next();
    counts[d.dataset]!++;
    seen[d.dataset]!.push(...d.images);
  }
  assert.ok(Math.abs(counts[1]! / 1000 - 0.2) < 0.04, String(counts));
  // The first 10 images of 'big' are a permutation of 0..9, and so are the next 10.
  assert.deepEqual(
    seen[0]!.slice(0, 10).sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  assert.deepEqual(
    seen[0]!.slice(10, 20).sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  assert.notDeepEqual(seen[0]!.slice(0, 10), seen[0]!.slice(10, 20));
});

test('sampler state restores the exact continuation', () => {
  const sources = [
    { name: 'a', size: 7, weight: 1 },
    { name: 'b', size: 5, weight: 1 },
  ];
  const s1 = new MultiDatasetSampler(sources, 3, 9);
  for (let i = 0; i < 13; i++) s1.next();
  const state = JSON.parse(JSON.stringify(s1.getState()));
  const expected = Array.from({ length: 10 }, () => s1.next());
  const s2 = new MultiDatasetSampler(sources, 3, 9);
  s2.setState(state);
  assert.deepEqual(
    Array.from({ length: 10 }, () => s2.next()),
    expected,
  );
  assert.throws(
    () => new MultiDatasetSampler([{ name: 'z', size: 1, weight: 0 }], 1, 1),
    /'z' needs a positive weight/,
  );
});

test('default loss switches per dataset type', () => {
  assert.deepEqual(defaultLossSwitches('detection', true), {
    decoderClass: true,
    boxes: true,
    masks: true,
    encoder: true,
    federated: false,
  });
  assert.deepEqual(defaultLossSwitches('grounding', false), {
    decoderClass: true,
    boxes: false,
    masks: false,
    encoder: false,
    federated: false,
  });
  assert.deepEqual(defaultLossSwitches('grounding', true), {
    decoderClass: true,
    boxes: true,
    masks: true,
    encoder: false,
    federated: false,
  });
  assert.deepEqual(defaultLossSwitches('class-agnostic', true), {
    decoderClass: false,
    boxes: true,
    masks: true,
    encoder: true,
    federated: false,
  });
  assert.equal(defaultLossSwitches('detection', false, true).federated, true);
});
