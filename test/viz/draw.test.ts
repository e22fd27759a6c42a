import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blit, createRgbImage, grayToRgb, resizeNearest } from '../../src/viz/image.js';
import { fillRect, strokeRect } from '../../src/viz/rect.js';
import { drawLine, drawPolyline } from '../../src/viz/line.js';
import { fillPolygons, rasterizePolygons } from '../../src/viz/polygon.js';
import { blendMask, colorizeLabels, drawMaskContour } from '../../src/viz/mask.js';
import { contrastingText, distinctColor, distinctPalette, hsvToRgb, shade } from '../../src/viz/palette.js';
import type { RgbImage } from '../../src/io/image-types.js';

/** The image's red channel as rows, for pictures drawn in pure red on black. */
const red = (img: RgbImage) =>
  Array.from({ length: img.height }, (_, y) =>
    Array.from({ length: img.width }, (_, x) => (img.data[(y * img.width + x) * 3]! > 0 ? 1 : 0)).join(''),
  );
const rows = (m: ArrayLike<number>, w: number) =>
  Array.from({ length: m.length / w }, (_, y) => Array.from({ length: w }, (_, x) => m[y * w + x]).join(''));
const R = [255, 0, 0] as const;

test('createRgbImage fills, refuses bad sizes; pixel(x, y) is data[(y*w+x)*3]', () => {
  const img = createRgbImage(3, 2, [1, 2, 3]);
  assert.equal(img.data.length, 18);
  assert.deepEqual([...img.data.subarray(15, 18)], [1, 2, 3]);
  assert.throws(() => createRgbImage(0, 2), /positive integers, got 0x2/);
  assert.throws(() => createRgbImage(2.5, 2), /positive integers/);
});

test('fillRect clips to the image and blends with alpha', () => {
  const img = createRgbImage(4, 3);
  fillRect(img, 2, -1, 5, 2, R);
  assert.deepEqual(red(img), ['0011', '0000', '0000']);
  const grey = createRgbImage(1, 1, [100, 100, 100]);
  fillRect(grey, 0, 0, 1, 1, [200, 0, 50], 0.25);
  assert.deepEqual([...grey.data], [125, 75, 88]); // 100 + (200-100)/4, 100 - 100/4, 100 - 50/4 = 87.5 -> 88
});

test('strokeRect draws inside the box, thickness included', () => {
  const img = createRgbImage(6, 5);
  strokeRect(img, 1, 1, 4, 3, R);
  assert.deepEqual(red(img), ['000000', '011110', '010010', '011110', '000000']);
  const thick = createRgbImage(6, 6);
  strokeRect(thick, 0, 0, 6, 6, R, 2);
  assert.deepEqual(red(thick), ['111111', '111111', '110011', '110011', '111111', '111111']);
});

test('drawLine: Bresenham, endpoints included, nearest pixel per column', () => {
  // y = x / 3 rounds to 0 0 1 1 1 2 2; without ties both directions give the same pixels.
  const a = createRgbImage(7, 3);
  drawLine(a, 0, 0, 6, 2, R);
  assert.deepEqual(red(a), ['1100000', '0011100', '0000011']);
  const b = createRgbImage(7, 3);
  drawLine(b, 6, 2, 0, 0, R);
  assert.deepEqual(red(b), red(a));
  const thick = createRgbImage(5, 4);
  drawLine(thick, 1, 1, 3, 1, R, 2);
  // An even brush puts the line pixel at its top-left.
  assert.deepEqual(red(thick), ['00000', '01111', '01111', '00000']);
  const tri = createRgbImage(4, 4);
  drawPolyline(tri, [0, 0, 3, 0, 3, 3], R);
  assert.deepEqual(red(tri), ['1111', '0101', '0011', '0001']);
});

test('rasterizePolygons: pixel centres inside, even-odd, union of polygons', () => {
  // Square [1,4]x[1,3]: centres x in {1.5,2.5,3.5}, y in {1.5,2.5}.
  assert.deepEqual(rows(rasterizePolygons([[1, 1, 4, 1, 4, 3, 1, 3]], 4, 5), 5), ['00000', '01110', '01110', '00000']);
  // Right triangle (0,0)-(4,0)-(0,4): centre (x+.5, y+.5) inside when x + y + 1 < 4.
  assert.deepEqual(rows(rasterizePolygons([[0, 0, 4, 0, 0, 4]], 4, 4), 4), ['1110', '1100', '1000', '0000']);
  // Two squares sharing the edge x = 2 claim disjoint pixels.
  const left = rasterizePolygons([[0, 0, 2, 0, 2, 2, 0, 2]], 2, 4);
  const right = rasterizePolygons([[2, 0, 4, 0, 4, 2, 2, 2]], 2, 4);
  assert.deepEqual(rows(left, 4), ['1100', '1100']);
  assert.deepEqual(rows(right, 4), ['0011', '0011']);
  assert.deepEqual(
    rows(
      rasterizePolygons(
        [
          [0, 0, 2, 0, 2, 2, 0, 2],
          [2, 0, 4, 0, 4, 2, 2, 2],
        ],
        2,
        4,
      ),
      4,
    ),
    ['1111', '1111'],
  );
  const img = createRgbImage(4, 4);
  fillPolygons(img, [[0, 0, 4, 0, 0, 4]], R);
  assert.deepEqual(red(img), ['1110', '1100', '1000', '0000']);
});

test('blendMask mixes only masked pixels; contour marks the boundary; size mismatch is refused', () => {
  const img = createRgbImage(2, 1, [100, 100, 100]);
  blendMask(img, [1, 0], [200, 0, 100], 0.5);
  assert.deepEqual([...img.data], [150, 50, 100, 100, 100, 100]);
  assert.throws(() => blendMask(img, [1, 0, 0], R), /mask has 3 pixels, image is 2x1/);
  const mask = [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0];
  const c = createRgbImage(5, 5);
  drawMaskContour(c, mask, R);
  assert.deepEqual(red(c), ['00000', '01110', '01010', '01110', '00000']);
});

test('colorizeLabels maps labels through the palette and leaves ignore black', () => {
  const img = colorizeLabels({ width: 3, height: 1, data: Uint8Array.from([1, 255, 2]) }, (v) => [
    v * 10,
    v * 20,
    v * 30,
  ]);
  assert.deepEqual([...img.data], [10, 20, 30, 0, 0, 0, 20, 40, 60]);
});

test('blit clips; resizeNearest samples centres; grayToRgb replicates', () => {
  const dst = createRgbImage(3, 2);
  blit(dst, createRgbImage(2, 2, [255, 0, 0]), 2, -1);
  assert.deepEqual(red(dst), ['001', '000']);
  const small = { width: 2, height: 1, data: Uint8Array.from([255, 0, 0, 0, 0, 0]) };
  assert.deepEqual(red(resizeNearest(small, 4, 2)), ['1100', '1100']);
  assert.deepEqual([...grayToRgb({ width: 2, height: 1, data: Uint8Array.from([7, 9]) }).data], [7, 7, 7, 9, 9, 9]);
});

test('palette: HSV corners, distinct colours differ, text contrast', () => {
  assert.deepEqual(hsvToRgb(0, 1, 1), [255, 0, 0]);
  assert.deepEqual(hsvToRgb(1 / 3, 1, 1), [0, 255, 0]);
  assert.deepEqual(hsvToRgb(2 / 3, 1, 0.5), [0, 0, 128]);
  assert.deepEqual(hsvToRgb(0.5, 0, 0.2), [51, 51, 51]);
  const p = distinctPalette(30);
  assert.equal(new Set(p.map((c) => c.join(','))).size, 30);
  assert.deepEqual(p[5], distinctColor(5));
  assert.deepEqual(contrastingText([250, 250, 200]), [0, 0, 0]);
  assert.deepEqual(contrastingText([20, 20, 120]), [255, 255, 255]);
  assert.deepEqual(shade([100, 200, 50], 1.5), [150, 255, 75]);
});
