import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FONT, drawText, measureText, wrapText } from '../../src/viz/font.js';
import { createRgbImage } from '../../src/viz/image.js';
import type { RgbImage } from '../../src/io/image-types.js';

const lit = (img: RgbImage) =>
  Array.from({ length: img.height }, (_, y) =>
    Array.from({ length: img.width }, (_, x) => (img.data[(y * img.width + x) * 3]! > 128 ? '#' : '.')).join(''),
  );

test('drawText draws the 5x7 glyph of "T" and "L" at (x, y), one column apart', () => {
  const img = createRgbImage(12, 9);
  const box = drawText(img, 'TL', 1, 1);
  assert.deepEqual(box, { x: 1, y: 1, width: 11, height: 8 });
  assert.deepEqual(lit(img), [
    '............',
    '.#####.#....',
    '...#...#....',
    '...#...#....',
    '...#...#....',
    '...#...#....',
    '...#...#....',
    '...#...#####',
    '............',
  ]);
});

test('scale magnifies each font pixel; descenders use the eighth row', () => {
  const img = createRgbImage(10, 16);
  drawText(img, '.', 0, 0, { scale: 2 });
  // '.' is rows 5-6, columns 1-2 of the glyph.
  const on = lit(img).flatMap((row, y) => [...row].map((c, x) => (c === '#' ? `${x},${y}` : '')).filter(Boolean));
  assert.deepEqual(on, [
    '2,10',
    '3,10',
    '4,10',
    '5,10',
    '2,11',
    '3,11',
    '4,11',
    '5,11',
    '2,12',
    '3,12',
    '4,12',
    '5,12',
    '2,13',
    '3,13',
    '4,13',
    '5,13',
  ]);
  const g = createRgbImage(5, 8);
  drawText(g, 'g', 0, 0);
  assert.equal(lit(g)[7], '.###.');
});

test('measureText, background box, unknown characters as "?"', () => {
  assert.deepEqual(measureText('abc'), { width: 17, height: 8 });
  assert.deepEqual(measureText('ab\nabcd', 2), { width: 46, height: 34 });
  assert.deepEqual(measureText(''), { width: 0, height: 8 });
  const img = createRgbImage(9, 12);
  const box = drawText(img, 'x', 2, 2, { background: [200, 200, 200], color: [0, 0, 0] });
  assert.deepEqual(box, { x: 1, y: 1, width: 7, height: 10 });
  assert.equal(img.data[(1 * 9 + 1) * 3], 200);
  const q = createRgbImage(6, 8);
  const u = createRgbImage(6, 8);
  drawText(q, '?', 0, 0);
  drawText(u, '\u00e9', 0, 0);
  assert.deepEqual(u.data, q.data);
  assert.equal(FONT.cellWidth, 6);
});

test('every printable ASCII glyph is distinct (no copy-paste slips in the table)', () => {
  const seen = new Map<string, string>();
  for (let c = 33; c < 127; c++) {
    const img = createRgbImage(6, 9);
    drawText(img, String.fromCharCode(c), 0, 0);
    const key = lit(img).join('');
    assert.ok(key.includes('#'), `glyph ${String.fromCharCode(c)} is empty`);
    assert.equal(seen.get(key), undefined, `${String.fromCharCode(c)} looks like ${seen.get(key)}`);
    seen.set(key, String.fromCharCode(c));
  }
});

test('wrapText breaks at spaces and cuts long words', () => {
  assert.deepEqual(wrapText('the small red circle', 10), ['the small', 'red circle']);
  assert.deepEqual(wrapText('abcdefghij k', 4), ['abcd', 'efgh', 'ij k']);
  assert.deepEqual(wrapText('  ', 4), []);
});
