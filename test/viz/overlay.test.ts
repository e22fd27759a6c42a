import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contactSheet } from '../../src/viz/contact-sheet.js';
import { drawOverlays } from '../../src/viz/overlay.js';
import { createRgbImage } from '../../src/viz/image.js';
import { FONT } from '../../src/viz/font.js';

test('drawOverlays tints the mask, draws the box, leaves the input untouched', () => {
  const base = createRgbImage(8, 8, [100, 100, 100]);
  const mask = new Uint8Array(64);
  for (let y = 2; y < 5; y++) for (let x = 2; x < 5; x++) mask[y * 8 + x] = 1;
  const out = drawOverlays(
    base,
    [
      { mask, color: [200, 0, 0] },
      { box: [0, 6, 8, 2], color: [0, 0, 255] },
    ],
    { maskAlpha: 0.5, contours: false },
  );
  assert.deepEqual([...base.data.subarray(0, 3)], [100, 100, 100]);
  const px = (x: number, y: number) => [...out.data.subarray((y * 8 + x) * 3, (y * 8 + x) * 3 + 3)];
  assert.deepEqual(px(3, 3), [150, 50, 50]);
  assert.deepEqual(px(1, 1), [100, 100, 100]);
  assert.deepEqual(px(0, 6), [0, 0, 255]);
  assert.deepEqual(px(7, 7), [0, 0, 255]);
  assert.deepEqual(px(3, 6), [0, 0, 255]);
});

test('labels are drawn on a tag inside the image', () => {
  const base = createRgbImage(40, 20);
  const out = drawOverlays(base, [{ box: [30, 15, 5, 5], label: 'ab', color: [255, 255, 0] }], {});
  // The tag (yellow at 85% over black = 217) is pushed left and up so that it fits: the text is
  // 11x8, starting at x = 40 - 11 - 1 = 28, y = 20 - 8 - 1 = 11, with a 1-pixel margin around it.
  const tag = (x: number, y: number) => out.data[(y * 40 + x) * 3] === 217 && out.data[(y * 40 + x) * 3 + 2] === 0;
  assert.ok(tag(27, 10) && tag(39, 19), 'tag corners');
  assert.ok(!tag(26, 10) && !tag(27, 9), 'nothing outside the tag');
  // Black text on the tag: the first column of 'a' is lit only in glyph row 5 (0x11).
  const at = (x: number, y: number) => [...out.data.subarray((y * 40 + x) * 3, (y * 40 + x) * 3 + 3)];
  assert.deepEqual(at(28, 16), [0, 0, 0]);
  assert.deepEqual(at(28, 15), [217, 217, 0]);
});

test('contactSheet: grid geometry, tiles placed, captions wrapped under tiles', () => {
  const tiles = [
    createRgbImage(10, 6, [255, 0, 0]),
    createRgbImage(10, 6, [0, 255, 0]),
    createRgbImage(8, 4, [0, 0, 255]),
  ];
  const sheet = contactSheet(tiles, { columns: 2, padding: 2, background: [0, 0, 0] });
  assert.equal(sheet.width, 2 * (10 + 2) + 2);
  assert.equal(sheet.height, 2 * (6 + 2) + 2);
  const px = (x: number, y: number) => [
    ...sheet.data.subarray((y * sheet.width + x) * 3, (y * sheet.width + x) * 3 + 3),
  ];
  assert.deepEqual(px(2, 2), [255, 0, 0]);
  assert.deepEqual(px(14, 2), [0, 255, 0]);
  assert.deepEqual(px(2, 10), [0, 0, 255]);
  assert.deepEqual(px(1, 1), [0, 0, 0]);
  const captioned = contactSheet([createRgbImage(12, 4)], { padding: 0, captions: [['abcdef ghij']] });
  // 12 px fit 2 characters per line: 'ab','cd','ef','gh','ij' -> 5 lines.
  assert.equal(captioned.height, 4 + 5 * FONT.cellHeight + 2);
  assert.throws(() => contactSheet([]), /no tiles/);
});
