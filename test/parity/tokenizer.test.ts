import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadClipTokenizer } from '../../src/text/clip-vocab-file.js';
import { clipCleanText } from '../../src/text/text-cleaning.js';
import { fixtureDir, vocabPath } from './towers-fixture.js';

test("all 48 fixture strings give APE's ids exactly (clean text, BPE ids, 77 framed ids)", async () => {
  const fixture = JSON.parse(readFileSync(`${fixtureDir}tokenizer.json`, 'utf8')) as {
    cases: { text: string; clean: string; bpe_ids: number[]; ids: number[] }[];
  };
  assert.equal(fixture.cases.length, 48);
  const tok = await loadClipTokenizer(vocabPath);
  const rows = tok.tokenize(fixture.cases.map((c) => c.text));
  fixture.cases.forEach((c, i) => {
    assert.equal(clipCleanText(c.text), c.clean, `clean: ${JSON.stringify(c.text)}`);
    assert.deepEqual(tok.encode(c.text), c.bpe_ids, `bpe: ${JSON.stringify(c.text)}`);
    assert.deepEqual(rows[i], c.ids, `ids: ${JSON.stringify(c.text)}`);
  });
});
