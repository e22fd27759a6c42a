import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf, initEngine } from '../../src/engine/engine.js';
import { assignCheckpointWeights } from '../../src/training/warm-start.js';
import { parseTrainConfig } from '../../src/training/config.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

const entry = (shape: number[], values: number[]) => ({ shape, data: Float32Array.from(values) });

test('a warm start assigns every checkpoint parameter and reports the model parameters it lacks', () => {
  const params = new Map([
    ['a.weight', tf.variable(tf.zeros([2, 2]))],
    ['stem.proj.weight', tf.variable(tf.fill([3], 7))],
    ['a.bias', tf.variable(tf.zeros([2]))],
  ]);
  const fresh = assignCheckpointWeights(
    params,
    {
      params: new Map([
        ['a.weight', entry([2, 2], [1, 2, 3, 4])],
        ['a.bias', entry([2], [5, 6])],
      ]),
    },
    'ck.safetensors',
  );
  assert.deepEqual(fresh, ['stem.proj.weight']);
  assert.deepEqual([...params.get('a.weight')!.dataSync()], [1, 2, 3, 4]);
  assert.deepEqual([...params.get('a.bias')!.dataSync()], [5, 6]);
  assert.deepEqual([...params.get('stem.proj.weight')!.dataSync()], [7, 7, 7]);
  tf.dispose([...params.values()]);
});

test('a warm start refuses a checkpoint parameter the model lacks or has in another shape, before assigning anything', () => {
  const w = tf.variable(tf.zeros([2, 2]));
  const params = new Map([['a.weight', w]]);
  assert.throws(
    () =>
      assignCheckpointWeights(
        params,
        {
          params: new Map([
            ['a.weight', entry([2, 2], [1, 1, 1, 1])],
            ['old.bias', entry([1], [1])],
          ]),
        },
        'ck.safetensors',
      ),
    /ck\.safetensors: parameter 'old\.bias' is not in the model being trained/,
  );
  assert.throws(
    () =>
      assignCheckpointWeights(params, { params: new Map([['a.weight', entry([4], [1, 1, 1, 1])]]) }, 'ck.safetensors'),
    /ck\.safetensors: parameter 'a\.weight' has shape \[4\], the model needs \[2, 2\]/,
  );
  assert.deepEqual([...w.dataSync()], [0, 0, 0, 0]);
  w.dispose();
});

test('initFrom resolves against the config root; anything but a path or null is named', () => {
  const base = { output: 'run', datasets: [{ name: 'a', type: 'detection', annotations: 'x.json' }] };
  assert.equal(parseTrainConfig(base, '/cfg/t.json').initFrom, null);
  assert.equal(
    parseTrainConfig({ ...base, root: '..', initFrom: 'runs/a/step.safetensors' }, '/cfg/sub/t.json').initFrom,
    '/cfg/runs/a/step.safetensors',
  );
  assert.throws(
    () => parseTrainConfig({ ...base, initFrom: 3 }, '/cfg/t.json'),
    /t\.json: 'initFrom' must name a training checkpoint or be null, got 3/,
  );
});
