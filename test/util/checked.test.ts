import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getOrThrow, required } from '../../src/util/checked.js';

test('getOrThrow returns the entry, and names the map and the key when there is none', () => {
  const ids = new Map<string, number>([
    ['a', 1],
    ['zero', 0],
  ]);
  assert.equal(getOrThrow(ids, 'a', 'image ids'), 1);
  assert.equal(getOrThrow(ids, 'zero', 'image ids'), 0);
  assert.throws(() => getOrThrow(ids, 'b', 'image ids'), { message: "image ids: no entry for 'b'" });
  assert.throws(() => getOrThrow(new Map<number, string>(), 7, 'labels'), { message: 'labels: no entry for 7' });
  assert.throws(() => getOrThrow(new Map<object, string>(), {}, 'values'), {
    message: 'values: no entry for the given object',
  });
});

test('required passes every value but null and undefined, and names what is missing', () => {
  assert.equal(required(0, 'count'), 0);
  assert.equal(required('', 'name'), '');
  assert.equal(required(false, 'flag'), false);
  assert.throws(() => required(null, 'the 2D canvas context'), { message: 'the 2D canvas context is missing' });
  assert.throws(() => required(undefined, "dataset 'coco': annotations"), {
    message: "dataset 'coco': annotations is missing",
  });
});
