import { strict as assert } from 'node:assert';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Journal, type JournalHeader } from '../../src/annotate/journal.js';
import type { ImageOutcome } from '../../src/annotate/types.js';

const header: JournalHeader = {
  journal: 'ape-annotate/1',
  settings: { vocabulary: ['cat'], sentences: [], threshold: 0.3 },
  model: 'abc',
  images: 3,
  imagesHash: 'h1',
};
const found: ImageOutcome = {
  ok: true,
  result: {
    width: 4,
    height: 2,
    objects: [{ prompt: 0, bbox: [0, 0, 2, 1], area: 2, score: 0.5, segmentation: { size: [2, 4], counts: '02N0' } }],
  },
};
const broken: ImageOutcome = { ok: false, reason: 'b.png: corrupt' };

describe('Journal', () => {
  it('keeps the first outcome of an image and reads back what it wrote', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'ape-journal-')), 'journal.jsonl');
    const j = Journal.open(path, header);
    assert.equal(j.record(2, broken), true);
    assert.equal(j.record(0, found), true);
    assert.equal(j.record(2, found), false);
    j.close();
    const lines = readFileSync(path, 'utf8').split('\n');
    assert.equal(lines.length, 4); // header, two entries, and the empty string after the last newline
    const again = Journal.open(path, header);
    assert.deepEqual(
      [...again.done.entries()],
      [
        [2, broken],
        [0, found],
      ],
    );
    again.close();
  });

  it('cuts off a last line that a killed process left half-written', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'ape-journal-')), 'journal.jsonl');
    const j = Journal.open(path, header);
    j.record(1, found);
    j.close();
    const whole = readFileSync(path, 'utf8');
    appendFileSync(path, '{"i":0,"outcome":{"ok":tr');
    const again = Journal.open(path, header);
    assert.deepEqual([...again.done.keys()], [1]);
    again.record(0, broken);
    again.close();
    assert.equal(readFileSync(path, 'utf8'), `${whole}${JSON.stringify({ i: 0, outcome: broken })}\n`);
  });

  it('starts afresh when the header line itself was cut short', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'ape-journal-')), 'journal.jsonl');
    writeFileSync(path, '{"journal":"ape-ann');
    const j = Journal.open(path, header);
    assert.equal(j.done.size, 0);
    j.close();
    assert.equal(readFileSync(path, 'utf8'), `${JSON.stringify(header)}\n`);
  });

  it('refuses a journal of another run, naming what differs', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'ape-journal-')), 'journal.jsonl');
    Journal.open(path, header).close();
    assert.throws(
      () => Journal.open(path, { ...header, model: 'xyz' }),
      /differs in its model \(fingerprint abc, this one xyz\)/,
    );
    assert.throws(
      () => Journal.open(path, { ...header, imagesHash: 'h2' }),
      /differs in its list of images \(3 images\)/,
    );
    assert.throws(
      () => Journal.open(path, { ...header, settings: { ...header.settings, threshold: 0.5 } }),
      /differs in its prompts or threshold/,
    );
  });

  it('refuses an entry for an image the run does not have', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'ape-journal-')), 'journal.jsonl');
    Journal.open(path, header).close();
    appendFileSync(path, `${JSON.stringify({ i: 3, outcome: broken })}\n`);
    assert.throws(() => Journal.open(path, header), /line 2: not a journal entry of this run/);
  });
});
