import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WordTokenizer, splitWords } from '../../src/text/word-tokenizer.js';

test('words: lower-cased NFKC letter/digit runs and single punctuation marks', () => {
  assert.deepEqual(splitWords('The Red-Car, 2 CATS!'), ['the', 'red', '-', 'car', ',', '2', 'cats', '!']);
  assert.deepEqual(splitWords('ＦＵＬＬ width café'), ['full', 'width', 'café']);
  assert.deepEqual(splitWords('   '), []);
});

test('ids: pad 0, unknown 1, words, hash buckets, then start and end as the two largest ids', () => {
  const t = new WordTokenizer(['cat', 'dog'], 3, 6);
  assert.equal(t.vocabSize, 2 + 2 + 3 + 2);
  assert.equal(t.sot, 7);
  assert.equal(t.eot, 8);
  assert.deepEqual(t.tokenize(['dog cat']), [[7, 3, 2, 8, 0, 0]]);
  // Unknown words land in a bucket (ids 4..6), the same one every time.
  const [row] = t.tokenize(['zebra']);
  assert.ok(row![1]! >= 4 && row![1]! <= 6);
  assert.deepEqual(t.tokenize(['zebra']), [row]);
  // Truncation keeps the end token last.
  assert.deepEqual(t.tokenize(['cat cat cat cat cat cat cat']), [[7, 2, 2, 2, 2, 8]]);
  // Without buckets unknown words are id 1.
  assert.deepEqual(new WordTokenizer(['cat'], 0, 4).tokenize(['a cat']), [[3, 1, 2, 4]]);
});

test('fromTexts: most frequent words first (ties alphabetical), the rest of the ids as buckets; JSON round trip', () => {
  const t = WordTokenizer.fromTexts(['a cat', 'a dog', 'the cat', 'a bird'], 20, { contextLength: 8 });
  assert.deepEqual(t.words, ['a', 'cat', 'bird', 'dog', 'the']);
  assert.equal(t.vocabSize, 20);
  assert.equal(t.hashBuckets, 20 - 4 - 5);
  const back = WordTokenizer.fromJSON(JSON.parse(JSON.stringify(t.toJSON())));
  assert.deepEqual(back.tokenize(['the bird sings']), t.tokenize(['the bird sings']));
  const hashing = WordTokenizer.hashing(100, 16);
  assert.equal(hashing.vocabSize, 100);
  assert.throws(() => WordTokenizer.fromJSON({ kind: 'clip' }), /not a word tokenizer/);
  assert.throws(() => new WordTokenizer(['Cat'], 0), /not a single normalised word/);
  assert.throws(() => new WordTokenizer(['cat', 'cat'], 0), /repeats/);
});
