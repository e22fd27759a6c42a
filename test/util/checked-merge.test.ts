import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkedMerge, type MergeFail, type MergeRules } from '../../src/util/checked-merge.js';

const fail: MergeFail = (path, why) => {
  throw new Error(`'${path}' ${why}`);
};
const template = () => ({
  steps: 10,
  name: 'run',
  sizes: [1, 2],
  optimizer: { lr: 0.1, betas: [0.9, 0.99] },
  neck: { groups: 32 },
  stem: null as null | { channels: number[] },
  maps: {} as Record<string, number>,
});
const defaults: MergeRules = { missing: 'default', unknown: 'error', nullable: ['neck'], freeForm: ['maps', 'extra'] };

test('checkedMerge fills what the value lacks from the template and keeps what it gives', () => {
  const t = template();
  const merged = checkedMerge(
    t,
    { optimizer: { lr: 0.5 }, neck: null, stem: { channels: [4] }, maps: { 'a.': 0.1 }, extra: [1] },
    defaults,
    fail,
  );
  const betas = merged.optimizer.betas;
  assert.deepEqual(
    { ...merged },
    {
      steps: 10,
      name: 'run',
      sizes: [1, 2],
      optimizer: { lr: 0.5, betas: [0.9, 0.99] },
      neck: null,
      stem: { channels: [4] },
      maps: { 'a.': 0.1 },
      extra: [1],
    },
  );
  betas[0] = 0;
  assert.equal(t.optimizer.betas[0], 0.9, 'the template is not shared');
});

test('checkedMerge names the path and the problem', () => {
  const bad: Array<[unknown, MergeRules, string]> = [
    [{ stpes: 3 }, defaults, "'stpes' is not a known setting"],
    [{ optimizer: { lr: 'fast' } }, defaults, `'optimizer.lr' must be a number, got "fast"`],
    [{ optimizer: { betas: 0.9 } }, defaults, "'optimizer.betas' must be a list, got 0.9"],
    [{ optimizer: [1] }, defaults, "'optimizer' must be an object, got [1]"],
    [{ steps: null }, defaults, "'steps' must be a number, got null"],
    [{ maps: 3 }, defaults, "'maps' must be an object, got 3"],
    [{ name: 'x'.repeat(100) }, { ...defaults, missing: 'error' }, "'steps' is missing"],
  ];
  for (const [value, rules, message] of bad)
    assert.throws(() => checkedMerge(template(), value, rules, fail), { message });
});

test('checkedMerge with missing: error lets only the settings that are null in the template be absent; unknown: keep keeps the rest', () => {
  const full = {
    steps: 1,
    name: 'n',
    sizes: [],
    optimizer: { lr: 1, betas: [] },
    neck: { groups: 1 },
    maps: {},
    later: true,
  };
  const merged = checkedMerge(template(), full, { missing: 'error', unknown: 'keep' }, fail);
  assert.deepEqual({ ...merged }, full);
  assert.equal('stem' in merged, false);
  assert.throws(
    () => checkedMerge(template(), { ...full, neck: undefined }, { missing: 'error', unknown: 'keep' }, fail),
    { message: "'neck' must be an object, got undefined" },
  );
});
