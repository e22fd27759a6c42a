import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import { semanticConfidence, unlabelUnsure } from '../../src/inference/semantic-confidence.js';
import { loadClipTokenizer } from '../../src/text/clip-vocab-file.js';
import { BUNDLED_CLIP_VOCAB } from '../../src/text/bundled-vocab.js';
import { unknownWords, vocabularyWarnings } from '../../src/text/prompt-vocabulary.js';
import { WordTokenizer } from '../../src/text/word-tokenizer.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

test('vocabulary warnings: words a word-level model does not know are named, with the words it knows; CLIP and hashing tokenizers have no limit', async () => {
  const words = new WordTokenizer(['the', 'red', 'circle', 'sky', 'left'], 10);
  assert.deepEqual(unknownWords(words, 'The red circle, on the LEFT!'), ['on']);
  assert.deepEqual(unknownWords(words, 'sky'), []);
  assert.deepEqual(vocabularyWarnings(words, ['sky', 'the red circle']), []);
  assert.deepEqual(vocabularyWarnings(words, ['cat', 'sky', 'a cat on the left']), [
    "'cat', 'a', 'on' are not in this model's vocabulary, so prompts with them get meaningless scores; this model knows 5 words: circle, left, red, sky, the",
  ]);
  // Lists checked lately are remembered (a vocabulary predicted image after image): alternating lists give their own answers.
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(vocabularyWarnings(words, ['sky', 'the red circle']), []);
    assert.equal(vocabularyWarnings(words, ['cat', 'sky', 'a cat on the left']).length, 1);
  }
  assert.deepEqual(vocabularyWarnings(words, ['dog']), [
    "'dog' is not in this model's vocabulary, so prompts with it get meaningless scores; this model knows 5 words: circle, left, red, sky, the",
  ]);
  assert.deepEqual(vocabularyWarnings(WordTokenizer.hashing(64), ['cat']), []);
  // The bundled CLIP BPE vocabulary reads any word.
  const clip = await loadClipTokenizer(BUNDLED_CLIP_VOCAB);
  assert.equal(clip.vocabSize, 49408);
  assert.deepEqual(vocabularyWarnings(clip, ['cat', 'a zebra-striped teapot']), []);
});

test('semantic confidence: the mask-weighted mean score per cell, by hand; unsure labels become -1', () => {
  // Two queries, two prompts, a 2x2 mask grid at stride 1 over a 2x2 image.
  const logitOf = (p: number) => Math.log(p / (1 - p));
  const logits = tf.tensor2d([
    [logitOf(0.9), logitOf(0.2)],
    [logitOf(0.1), logitOf(0.6)],
  ]);
  const maskOf = (m: number) => logitOf(m);
  // q0 covers cells 0, 1 (0.8), q1 covers cells 2, 3 (0.8); each is 0.2 elsewhere.
  const masks = tf.tensor2d([
    [maskOf(0.8), maskOf(0.8), maskOf(0.2), maskOf(0.2)],
    [maskOf(0.2), maskOf(0.2), maskOf(0.8), maskOf(0.8)],
  ]);
  const conf = semanticConfidence(logits, masks);
  const values = conf.source(0, 2).arraySync();
  // Cell 0, prompt 0: (0.9*0.8 + 0.1*0.2) / 1.0 = 0.74; prompt 1: (0.2*0.8 + 0.6*0.2) = 0.28.
  // Cell 2, prompt 0: (0.9*0.2 + 0.1*0.8) = 0.26; prompt 1: (0.2*0.2 + 0.6*0.8) = 0.52.
  const expected = [
    [0.74, 0.28],
    [0.74, 0.28],
    [0.26, 0.52],
    [0.26, 0.52],
  ];
  for (let c = 0; c < 4; c++)
    for (let p = 0; p < 2; p++)
      assert.ok(Math.abs(values[c]![p]! - expected[c]![p]!) < 1e-5, `cell ${c} prompt ${p}: ${values[c]![p]}`);
  const geometry = { maskH: 2, maskW: 2, stride: 1, resizedW: 2, resizedH: 2, width: 2, height: 2 };
  const labels = Int32Array.from([0, 1, 1, -1]);
  unlabelUnsure(labels, conf.source, 2, geometry, 0.5);
  // 0.74 stays, 0.28 goes, 0.52 stays, -1 stays.
  assert.deepEqual([...labels], [0, -1, 1, -1]);
  // One prompt per chunk gives the same.
  const again = Int32Array.from([0, 1, 1, -1]);
  unlabelUnsure(again, conf.source, 2, geometry, 0.5, 4);
  assert.deepEqual([...again], [0, -1, 1, -1]);
  conf.dispose();
  tf.dispose([logits, masks]);
});
