import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { ClipTokenizer, bytesToUnicode } from '../../src/text/clip-tokenizer.js';
import { loadClipTokenizer, readClipMergesFile } from '../../src/text/clip-vocab-file.js';
import { clipCleanText, fixText, whitespaceClean } from '../../src/text/text-cleaning.js';
import { htmlUnescape } from '../../src/text/html-entities.js';
import { frameTokens } from '../../src/text/tokenizer.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const vocabPath = `${root}../shared/vocab/clip_bpe_simple_vocab_16e6.txt.gz`;

test('tokenizer core imports no Node modules (browser-safe)', () => {
  const seen = new Set<string>();
  const visit = (path: string) => {
    if (seen.has(path)) return;
    seen.add(path);
    const text = readFileSync(path, 'utf8');
    assert.doesNotMatch(text, /from ['"](node:|fs|path|zlib)/, `${path} imports a Node module`);
    for (const [, spec] of text.matchAll(/from '(\.[^']+)\.js'/g)) visit(join(dirname(path), `${spec}.ts`));
  };
  visit(join(root, 'src/text/clip-tokenizer.ts'));
  assert.ok(seen.size >= 4);
});

test('vocabulary: 49,408 ids, byte table, special tokens', async () => {
  const tok = await loadClipTokenizer(vocabPath);
  assert.equal(tok.vocabSize, 49408);
  assert.equal(tok.sot, 49406);
  assert.equal(tok.eot, 49407);
  const { bytes, chars } = bytesToUnicode();
  assert.equal(new Set(chars).size, 256);
  assert.equal(bytes[0], 0x21);
  assert.equal(chars[bytes.indexOf(0x20)], '\u0120');
  // Single letters with and without the word end: 'a' is id 64, 'a</w>' id 320.
  assert.deepEqual(tok.encode('a'), [320]);
  assert.deepEqual(tok.encode('1234'), tok.encode('1 2 3 4'));
  assert.deepEqual(tok.encode('<end_of_text>'), [49407]);
});

test('cleaning: ftfy-like fixes, HTML entities, Python whitespace', () => {
  assert.equal(fixText('\u201cquoted\u201d \u2018x\u2019'), '"quoted" \'x\'');
  assert.equal(fixText('\ufb01ne \ufb02y'), 'fine fly');
  assert.equal(fixText('\uff21\uff22\uff23\u3000x'), 'ABC x');
  assert.equal(fixText('caf\u00c3\u00a9'), 'caf\u00e9', 'UTF-8 read as Windows-1252');
  assert.equal(fixText('e\u0301'), '\u00e9', 'NFC');
  assert.equal(fixText('a\x00b\ufeffc\x1b[31md'), 'abcd');
  assert.equal(htmlUnescape('&amp;&lt;&#65;&#x42;&eacute;&ampx &unknown; &#128;'), '&<AB\u00e9&x &unknown; \u20ac');
  assert.equal(whitespaceClean(' a\t\n\u00a0b\u0085c  '), 'a b c');
  assert.equal(clipCleanText('  Caf\u00e9 &amp;amp;  TEA '), 'caf\u00e9 & tea');
});

// `[\s]+$` backtracked quadratically on a long run of spaces before a letter (minutes for this
// text); the strip is now two scans.
test('stripping a long whitespace run before a letter is linear', { timeout: 20_000 }, () => {
  const text = `${' '.repeat(300_000)}x${'\t'.repeat(300_000)}y`;
  assert.equal(clipCleanText(text), 'x y');
});

test('framing: 75 tokens fit, 76 are truncated with eot forced last; decode inverts encode', async () => {
  assert.deepEqual(frameTokens([5, 6], 1, 9, 5), [1, 5, 6, 9, 0]);
  assert.deepEqual(frameTokens([5, 6, 7, 8], 1, 9, 5), [1, 5, 6, 7, 9]);
  const tok = await loadClipTokenizer(vocabPath);
  const row = tok.tokenize(['a photo of a cat'])[0]!;
  assert.equal(tok.decode(row.slice(0, row.indexOf(tok.eot) + 1)), '<start_of_text>a photo of a cat <end_of_text>');
});

test('bad vocabulary files fail with the path in the message', async () => {
  assert.throws(() => new ClipTokenizer('header\na b\n'), /merge lines/);
  await assert.rejects(loadClipTokenizer(`${root}package.json`), /package\.json.*merge lines/);
  await assert.rejects(readClipMergesFile(`${root}does-not-exist.gz`), /does-not-exist\.gz: cannot read/);
});
