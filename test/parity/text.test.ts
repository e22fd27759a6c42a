import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf, initEngine } from '../../src/engine/engine.js';
import { ClipTextEncoder } from '../../src/text/clip-text-transformer.js';
import { loadClipTokenizer } from '../../src/text/clip-vocab-file.js';
import { loadReleasedWeights } from '../../src/convert/released-mapping.js';
import { Rng } from '../../src/util/random.js';
import {
  fixtureCases,
  fixtureCheckpoint,
  fixtureTextConfig,
  maxAbsDiff,
  tolerance,
  vocabPath,
} from './towers-fixture.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

test('text tower reproduces APE: output, last_hidden_state, resblock_out.0-1, end_token_idx, attention_mask', async () => {
  const prefix = 'model_vision.model_language.net.';
  const encoder = new ClipTextEncoder(fixtureTextConfig(), new Rng(1));
  const report = loadReleasedWeights(encoder, await fixtureCheckpoint(prefix), { prefix });
  assert.deepEqual(report.unused, ['logit_scale']);

  const cases = fixtureCases();
  const flat = cases.values('text.input_ids');
  const ids = Array.from({ length: 6 }, (_, i) => flat.slice(i * 77, (i + 1) * 77));
  // The stored ids are what our tokenizer gives for the stored strings.
  const strings = JSON.parse(cases.metadata['text.strings']!) as string[];
  assert.deepEqual((await loadClipTokenizer(vocabPath)).tokenize(strings), ids);

  const tol = tolerance('text');
  const taps = new Map<string, tf.Tensor>();
  const out = encoder.forward(ids, { returnHidden: true, fullLength: true, intermediates: taps });
  const check = (name: string, t: tf.Tensor) => {
    const diff = maxAbsDiff(t, cases.tensor(name));
    assert.ok(diff <= tol, `${name}: max abs diff ${diff} > ${tol}`);
  };
  check('text.output', out.embeddings);
  check('text.last_hidden_state', out.lastHiddenState!);
  check('text.resblock_out.0', taps.get('resblock_out.0')!);
  check('text.resblock_out.1', taps.get('resblock_out.1')!);
  assert.deepEqual(out.endTokenIdx, cases.values('text.end_token_idx'));
  assert.deepEqual([...out.attentionMask.dataSync()], cases.values('text.attention_mask'));
  // The default pass cuts the sequence after the longest prompt (12 of 77 positions here): same embeddings.
  const trimmed = encoder.forward(ids.slice(0, 5));
  assert.deepEqual(trimmed.attentionMask.shape, [5, 12]);
  const diff = maxAbsDiff(trimmed.embeddings, tf.slice(cases.tensor('text.output'), [0, 0], [5, 48]));
  assert.ok(diff <= tol, `trimmed text.output: max abs diff ${diff} > ${tol}`);
  encoder.dispose();
});
