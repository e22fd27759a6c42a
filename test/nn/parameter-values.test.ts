import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import { init, isPlaceholder, Module, withParameterValues } from '../../src/nn/module.js';
import { Rng } from '../../src/util/random.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

class Pair extends Module {
  readonly a: tf.Variable;
  readonly b: tf.Variable;
  constructor(rng: Rng) {
    super();
    this.a = this.param('a', [3, 4], init.uniform(1), rng);
    this.b = this.param('b', [4], init.constant(2), rng, false);
  }
}

test('parameters start from their initializer, as zeros, or as empty placeholders; the innermost scope wins', () => {
  const initialized = new Pair(new Rng(1));
  assert.ok(initialized.a.dataSync().some((v) => v !== 0));
  assert.deepEqual([...initialized.b.dataSync()], [2, 2, 2, 2]);
  assert.equal(isPlaceholder(initialized.a), false);

  const zeros = withParameterValues('zeros', () => new Pair(new Rng(1)));
  assert.deepEqual(zeros.a.shape, [3, 4]);
  assert.ok(zeros.a.dataSync().every((v) => v === 0));
  assert.deepEqual([...zeros.b.dataSync()], [0, 0, 0, 0]);
  assert.equal(zeros.a.trainable, true);
  assert.equal(zeros.b.trainable, false);

  const before = tf.memory().numBytes;
  const [outer, inner] = withParameterValues('zeros', () => [
    new Pair(new Rng(1)),
    withParameterValues('placeholder', () => new Pair(new Rng(1))),
  ]);
  assert.equal(tf.memory().numBytes - before, (12 + 4) * 4, 'a placeholder holds no memory');
  assert.deepEqual(inner!.a.shape, [0]);
  assert.equal(isPlaceholder(inner!.a), true);
  assert.equal(isPlaceholder(outer!.a), false);
  assert.equal(inner!.a.trainable, false, 'nothing trains a placeholder');
  assert.deepEqual([...inner!.namedParameters().keys()], ['a', 'b'], 'placeholders keep their names');

  assert.throws(() =>
    withParameterValues('placeholder', () => {
      throw new Error('constructor failed');
    }),
  );
  assert.equal(isPlaceholder(new Pair(new Rng(1)).a), false, 'a scope ends when its constructor throws');
  for (const m of [initialized, zeros, outer!, inner!]) m.dispose();
});
