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

test('embedding cache: with a full memory, a call whose new texts push out its own older ones still gets every vector', () => {
  const { tokenizer, enc } = encoder();
  const direct = (texts: string[]) => enc.forward(tokenizer.tokenize(texts)).embeddings.dataSync() as Float32Array;
  const cache = new PromptEmbeddingCache(enc, tokenizer, 'eot', 4, 4);
  cache.sentences(['a', 'b', 'c', 'd']).dispose();
  // 'a' is in memory; the four new texts drop 'a'..'d' as they come in.
  const texts = ['a', 'e', 'f', 'g', 'h'];
  const rows = new Float32Array(texts.length * cache.dim);
  cache.sentenceRows(texts, rows);
  const want = direct(texts);
  assert.ok(
    rows.every((v, i) => Math.abs(v - want[i]!) < 1e-6),
    'the vectors of the texts, in order',
  );
  assert.deepEqual(cache.stats(), { hits: 1, misses: 8, entries: 4, encoded: 8, stored: 0 });
  // Token rows likewise.
  const tokens = new PromptEmbeddingCache(enc, tokenizer, 'eot', 4, 2);
  tokens.tokens(['a', 'b']).tokens.dispose();
  const got = tokens.tokens(['a', 'c', 'd']);
  assert.deepEqual(Array.from(got.lengths), [3, 3, 3]);
  got.tokens.dispose();
});

test('list rows: kept per whole list and key, found with the list (counted as hits), dropped with the vectors; a list longer than the memory is not kept', () => {
  const { tokenizer, enc } = encoder();
  const cache = new PromptEmbeddingCache(enc, tokenizer, 'eot', 4, 3);
  const d = cache.dim;
  const rows = Float32Array.from({ length: 3 * d }, (_, i) => i);
  assert.throws(() => cache.keepListRows(['a', 'b'], 'k', rows), /36 values are not one 12-d row per text of 2/);
  cache.keepListRows(['a', 'b', 'c'], 'k', rows);
  assert.equal(cache.listRows(['a', 'b', 'c'], 'k'), rows);
  assert.equal(cache.stats().hits, 3);
  assert.equal(cache.listRows(['a', 'b', 'c'], 'other engine'), undefined);
  assert.equal(cache.listRows(['a', 'b'], 'k'), undefined);
  // Longer than the memory holds (3 vectors): streamed by the caller, never kept.
  assert.equal(cache.keepsLists(4), false);
  cache.keepListRows(['a', 'b', 'c', 'd'], 'k', new Float32Array(4 * d));
  assert.equal(cache.listRows(['a', 'b', 'c', 'd'], 'k'), undefined);
  // The rows were made from the vectors: they go with them (the text tower's weights changed).
  cache.clear();
  assert.equal(cache.listRows(['a', 'b', 'c'], 'k'), undefined);
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
