import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecentLists } from '../../src/util/recent-lists.js';

test('recent lists: a value per whole list and tag (same strings, same order); the least recently used go past the list count or the weight', () => {
  const lists = new RecentLists<string>(3, 10);
  assert.equal(lists.set('a', ['x', 'y'], 'xy', 2), true);
  assert.equal(lists.get('a', ['x', 'y']), 'xy');
  // Another array with the same strings is the same list; another order, length, or tag is not.
  assert.equal(lists.get('a', ['x', 'y'].slice()), 'xy');
  assert.equal(lists.get('a', ['y', 'x']), undefined);
  assert.equal(lists.get('a', ['x']), undefined);
  assert.equal(lists.get('b', ['x', 'y']), undefined);
  // The caller's array may change afterwards: the list was copied.
  const mutable = ['p', 'q'];
  lists.set('a', mutable, 'pq', 3);
  mutable[0] = 'z';
  assert.equal(lists.get('a', ['p', 'q']), 'pq');
  assert.equal(lists.get('a', mutable), undefined);
  // Setting a list again replaces its value.
  lists.set('a', ['p', 'q'], 'pq2', 3);
  assert.equal(lists.get('a', ['p', 'q']), 'pq2');
  // Weight: 2 + 3 + 6 > 10 drops the least recently used (['x', 'y'], not read since ['p', 'q']).
  lists.set('b', ['r'], 'r', 6);
  assert.equal(lists.get('a', ['x', 'y']), undefined);
  assert.equal(lists.get('a', ['p', 'q']), 'pq2');
  assert.equal(lists.get('b', ['r']), 'r');
  // Count: a third and a fourth list drop the least recently used ('pq2' after 'r' was read).
  lists.set('c', ['s'], 's', 0);
  lists.set('c', ['t'], 't', 0);
  assert.equal(lists.get('a', ['p', 'q']), undefined);
  assert.deepEqual([lists.get('b', ['r']), lists.get('c', ['s']), lists.get('c', ['t'])], ['r', 's', 't']);
  // Heavier alone than the whole budget: not kept, nothing dropped.
  assert.equal(lists.set('d', ['u'], 'u', 11), false);
  assert.equal(lists.get('d', ['u']), undefined);
  assert.equal(lists.get('b', ['r']), 'r');
  lists.clear();
  assert.equal(lists.get('b', ['r']), undefined);
  // A frozen list is kept as it is (it cannot change).
  const frozen = Object.freeze(['f']);
  lists.set('f', frozen, 'frozen', 0);
  assert.equal(lists.get('f', ['f']), 'frozen');
});
