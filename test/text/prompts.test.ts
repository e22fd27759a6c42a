import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import { parsePromptString, promptEntries } from '../../src/text/prompts.js';
import { PromptEmbeddingCache, poolPromptTokens } from '../../src/text/prompt-embeddings.js';
import { ClipTextEncoder } from '../../src/text/clip-text-transformer.js';
import { WordTokenizer } from '../../src/text/word-tokenizer.js';
import { Rng } from '../../src/util/random.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

test("prompt strings: comma separated; any item with a space makes them all sentences (APE's rule)", () => {
  assert.deepEqual(parsePromptString('cat, dog,,  sky '), { vocabulary: ['cat', 'dog', 'sky'], sentences: [] });
  assert.deepEqual(parsePromptString('cat, a red car'), { vocabulary: [], sentences: ['cat', 'a red car'] });
  assert.deepEqual(parsePromptString(' , '), { vocabulary: [], sentences: [] });
});

test('prompt entries: vocabulary first, then sentences, each with its column index', () => {
  assert.deepEqual(promptEntries({ vocabulary: ['a'], sentences: ['b c', 'd e'] }), [
    { text: 'a', kind: 'vocabulary', index: 0 },
    { text: 'b c', kind: 'sentence', index: 1 },
    { text: 'd e', kind: 'sentence', index: 2 },
  ]);
  assert.throws(() => promptEntries({ vocabulary: ['ok', '  '] }), /vocabulary\[1\] is empty/);
  assert.throws(() => promptEntries({ sentences: [3 as unknown as string] }), /sentences\[0\] must be a string/);
});

function encoder() {
  const tokenizer = WordTokenizer.hashing(64, 8);
  const enc = new ClipTextEncoder(
    { vocabSize: 64, contextLength: 8, width: 16, heads: 2, layers: 1, mlpRatio: 4, embedDim: 12, layerNormEps: 1e-5 },
    new Rng(1),
  );
  return { tokenizer, enc };
}

test('embedding cache: each text encoded once, same vector alone or in a crowd', () => {
  const { tokenizer, enc } = encoder();
  const cache = new PromptEmbeddingCache(enc, tokenizer, 'eot', 4);
  const alone = cache.sentences(['red car']).arraySync()[0]!;
  assert.deepEqual(cache.stats(), { hits: 0, misses: 1, entries: 1, encoded: 1, stored: 0 });
  const fresh = new PromptEmbeddingCache(enc, tokenizer, 'eot', 4);
  const crowd = fresh.sentences(['a', 'b b', 'red car', 'c c c c c', 'd', 'e']).arraySync();
  assert.ok(alone.every((v, i) => Math.abs(v - crowd[2]![i]!) < 1e-5));
  const again = cache.sentences(['red car', 'red car']);
  assert.deepEqual(cache.stats(), { hits: 2, misses: 1, entries: 1, encoded: 1, stored: 0 });
  assert.deepEqual(again.shape, [2, 12]);
  // The cached vector is what the tower gives directly.
  const direct = enc.forward(tokenizer.tokenize(['red car'])).embeddings.arraySync()[0]!;
  assert.ok(direct.every((v, i) => Math.abs(v - alone[i]!) < 1e-6));
  cache.clear();
  assert.equal(cache.stats().entries, 0);
});

test('token cache and pooling: eot takes the end token row, mean averages start..end', () => {
  const { tokenizer, enc } = encoder();
  const cache = new PromptEmbeddingCache(enc, tokenizer, 'eot', 4);
  const toks = cache.tokens(['red car', 'sky']);
  assert.deepEqual(Array.from(toks.lengths), [4, 3]);
  assert.deepEqual(Array.from(toks.offsets), [0, 4]);
  assert.deepEqual(toks.tokens.shape, [7, 12]);
  const rows = toks.tokens.arraySync();
  const pooledEot = poolPromptTokens(
    tf.expandDims(toks.tokens, 0) as tf.Tensor3D,
    toks.offsets,
    toks.lengths,
    'eot',
  ).arraySync()[0]!;
  assert.deepEqual(pooledEot[0], rows[3]);
  assert.deepEqual(pooledEot[1], rows[6]);
  // eot pooling of the token rows equals the sentence embedding.
  const sentence = cache.sentences(['red car']).arraySync()[0]!;
  assert.ok(sentence.every((v, i) => Math.abs(v - rows[3]![i]!) < 1e-5));
  const pooledMean = poolPromptTokens(
    tf.stack([toks.tokens, tf.mul(toks.tokens, 2)]) as tf.Tensor3D,
    toks.offsets,
    toks.lengths,
    'mean',
  ).arraySync();
  const mean = rows.slice(4, 7).reduce((acc, r) => acc.map((v, i) => v + r[i]! / (3 + 1e-6)), new Array(12).fill(0));
  assert.ok(mean.every((v, i) => Math.abs(v - pooledMean[0]![1]![i]!) < 1e-5));
  assert.ok(mean.every((v, i) => Math.abs(2 * v - pooledMean[1]![1]![i]!) < 1e-5));
});
