/**
 * The fast instance-mask path of predict (row-wise paste with its taps worked out once, RLE
 * straight from the box window, the queries' logits gathered a chunk at a time) against
 * straightforward references: a per-pixel paste over the whole image, sampleBilinear at every
 * grid point, encodeRle of the full mask, one slice per query. Bit-exact.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import { pasteMask, pasteMaskSoft } from '../../src/structures/bitmap.js';
import { encodeRle } from '../../src/structures/rle.js';
import { pasteInstanceMaskRle, sampleBilinear, boxToOriginal } from '../../src/inference/instances.js';
import { forEachQueryMask, imageMaskLogits, MASK_READ_QUERIES } from '../../src/inference/instance-masks.js';
import type { ImagePlacement } from '../../src/inference/preprocess.js';
import { Rng } from '../../src/util/random.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

function random(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

const f = Math.fround;

/** detectron2's paste (grid_sample, bilinear, zero padding) pixel by pixel over the whole image, in float32. */
function referencePasteSoft(
  boxMask: ArrayLike<number>,
  maskH: number,
  maskW: number,
  box: readonly [number, number, number, number],
  imageH: number,
  imageW: number,
): Float32Array {
  const out = new Float32Array(imageH * imageW);
  const [x0, y0, x1, y1] = box.map(f) as [number, number, number, number];
  if (!(x1 > x0 && y1 > y0)) return out;
  const source = (pixel: number, start: number, extent: number, size: number) => {
    const g = f(f(f(f(pixel + 0.5) - start) / extent) * 2) - 1;
    return f(f(f(f(g) + 1) * f(size / 2)) - 0.5);
  };
  const at = (r: number, c: number) => (r >= 0 && r < maskH && c >= 0 && c < maskW ? boxMask[r * maskW + c]! : 0);
  for (let y = 0; y < imageH; y++) {
    for (let x = 0; x < imageW; x++) {
      // Only the box widened by one pixel is sampled (detectron2 pastes that window).
      if (x < Math.floor(x0) - 1 || x >= Math.ceil(x1) + 1 || y < Math.floor(y0) - 1 || y >= Math.ceil(y1) + 1)
        continue;
      const ix = source(x, x0, f(x1 - x0), maskW);
      const iy = source(y, y0, f(y1 - y0), maskH);
      const c = Math.floor(ix);
      const r = Math.floor(iy);
      const tx = f(ix - c);
      const ty = f(iy - r);
      // A tap outside the mask has weight 0 (zero padding), whatever the mask holds.
      const wW = c >= 0 && c < maskW ? f(1 - tx) : 0;
      const wE = c + 1 >= 0 && c + 1 < maskW ? tx : 0;
      const vNW = f(at(r, c) * f(wW * f(1 - ty)));
      const vNE = f(at(r, c + 1) * f(wE * f(1 - ty)));
      const vSW = f(at(r + 1, c) * f(wW * ty));
      const vSE = f(at(r + 1, c + 1) * f(wE * ty));
      out[y * imageW + x] = f(f(f(vNW + vNE) + vSW) + vSE);
    }
  }
  return out;
}

/** A box mask with empty and full stretches (as real masks have) and, for floats, fractional values. */
function boxMask(rand: () => number, h: number, w: number, float: boolean): Float32Array | Uint8Array {
  const cx = rand() * w;
  const cy = rand() * h;
  const r = (0.2 + rand() * 0.5) * Math.max(h, w);
  const inside = (i: number) => Math.hypot((i % w) - cx, Math.floor(i / w) - cy) < r;
  if (!float) return Uint8Array.from({ length: h * w }, (_, i) => (inside(i) !== rand() < 0.05 ? 1 : 0));
  return Float32Array.from({ length: h * w }, (_, i) => (inside(i) ? (rand() < 0.5 ? 1 : rand()) : 0));
}

const equalBits = (a: Float32Array, b: Float32Array, what: string) => {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) assert.fail(`${what}: value ${i}: ${a[i]} vs ${b[i]}`);
};

test('pasteMaskSoft and pasteMask equal the per-pixel paste over the whole image', () => {
  const rand = random(3);
  let checked = 0;
  for (let k = 0; k < 60; k++) {
    const [mh, mw] = [1 + Math.floor(rand() * 9), 1 + Math.floor(rand() * 9)];
    const [imageH, imageW] = [1 + Math.floor(rand() * 40), 1 + Math.floor(rand() * 40)];
    const x0 = rand() * imageW * 1.4 - imageW * 0.2;
    const y0 = rand() * imageH * 1.4 - imageH * 0.2;
    // Some boxes degenerate (zero or negative extent), some hanging off the image.
    const box: [number, number, number, number] =
      k % 10 === 9 ? [x0, y0, x0, y0 + 3] : [x0, y0, x0 + rand() * imageW, y0 + rand() * imageH];
    const mask = boxMask(rand, mh, mw, k % 2 === 0);
    const expected = referencePasteSoft(mask, mh, mw, box, imageH, imageW);
    equalBits(pasteMaskSoft(mask, mh, mw, box, imageH, imageW), expected, `soft ${k} box ${box}`);
    for (const threshold of [0.5, 0.25, 1, 0]) {
      const hard = pasteMask(mask, mh, mw, box, imageH, imageW, threshold);
      assert.deepEqual(
        hard,
        Uint8Array.from(expected, (v) => (v >= threshold ? 1 : 0)),
        `hard ${k} at ${threshold}`,
      );
    }
    checked += expected.filter((v) => v > 0 && v < 1).length;
  }
  assert.ok(checked > 1000, `only ${checked} fractional pixels compared`);
  // Non-finite mask values: pasteMask still thresholds exactly what pasteMaskSoft gives (a
  // tap of weight 0 is not read, so its infinity does not spread).
  const odd = Float32Array.from([1, Infinity, 0, 0.5, 1, 1, 0, Number.NaN, 1, 1, 1, 0, 0, 0.25, 1, 1]);
  for (const box of [
    [0.5, 1, 9.5, 8],
    [-3, 2, 6, 12],
    [0, 0, 4, 4], // pixel centres on mask cells: the east and south taps have weight 0
  ] as [number, number, number, number][]) {
    const soft = pasteMaskSoft(odd, 4, 4, box, 10, 10);
    assert.deepEqual(
      pasteMask(odd, 4, 4, box, 10, 10),
      Uint8Array.from(soft, (v) => (v >= 0.5 ? 1 : 0)),
      `box ${box}`,
    );
  }
});

/** pasteInstanceMask the plain way: sampleBilinear at every grid point, the per-pixel paste, encodeRle of the whole image. */
function referenceInstanceRle(
  logits: Float32Array,
  maskH: number,
  maskW: number,
  stride: number,
  boxInput: [number, number, number, number],
  placement: ImagePlacement,
  resolution: number,
) {
  const [x1, y1, x2, y2] = boxInput;
  const grid = new Uint8Array(resolution * resolution);
  const bw = (x2 - x1) / resolution;
  const bh = (y2 - y1) / resolution;
  for (let i = 0; i < resolution; i++)
    for (let j = 0; j < resolution; j++) {
      const u = (x1 + (j + 0.5) * bw) / stride - 0.5;
      const v = (y1 + (i + 0.5) * bh) / stride - 0.5;
      grid[i * resolution + j] = sampleBilinear(logits, maskH, maskW, u, v) > 0 ? 1 : 0;
    }
  const box = boxToOriginal(boxInput, placement);
  // The fast path pastes into the box's window, whose origin moves the box by whole pixels.
  const wx0 = Math.max(Math.floor(box[0]) - 1, 0);
  const wy0 = Math.max(Math.floor(box[1]) - 1, 0);
  const soft = referencePasteSoft(
    grid,
    resolution,
    resolution,
    [box[0] - wx0, box[1] - wy0, box[2] - wx0, box[3] - wy0],
    placement.height - wy0,
    placement.width - wx0,
  );
  const { width, height } = placement;
  const full = new Uint8Array(width * height);
  for (let y = wy0; y < height; y++)
    for (let x = wx0; x < width; x++) full[y * width + x] = soft[(y - wy0) * (width - wx0) + (x - wx0)]! >= 0.5 ? 1 : 0;
  return encodeRle(full, height, width);
}

test('pasteInstanceMaskRle equals the plain grid, paste and full-image RLE', () => {
  const rand = random(17);
  const [maskH, maskW, stride] = [12, 10, 4]; // a 40 x 48 (w x h) input
  let foreground = 0;
  for (let k = 0; k < 80; k++) {
    // Smooth logits with positive and negative regions, plus noise.
    const phase = rand() * 6;
    const logits = Float32Array.from(
      { length: maskH * maskW },
      (_, i) => Math.sin((i % maskW) / 2 + phase) + Math.cos(Math.floor(i / maskW) / 3) + (rand() - 0.5),
    );
    const resizedWidth = 40;
    const resizedHeight = 48;
    // Originals smaller and larger than the input, other aspect ratios.
    const [width, height] = [
      [40, 48],
      [100, 120],
      [17, 21],
      [63, 90],
    ][k % 4]!;
    const placement = { width: width!, height: height!, resizedWidth, resizedHeight };
    // Boxes inside, touching each edge of the image (windows that start or end at it), tiny, whole.
    const x1 = [0, rand() * 30, rand() * 39, 0][Math.floor(k / 4) % 4]!;
    const y1 = [0, rand() * 30, 0, rand() * 47][Math.floor(k / 16) % 4]!;
    const box: [number, number, number, number] = [
      x1,
      y1,
      Math.min(x1 + (k % 7 === 0 ? rand() : rand() * 40), 40),
      k % 5 === 0 ? 48 : Math.min(y1 + rand() * 48, 48),
    ];
    for (const resolution of [28, 128]) {
      const expected = referenceInstanceRle(logits, maskH, maskW, stride, box, placement, resolution);
      const got = pasteInstanceMaskRle({ logits, height: maskH, width: maskW, stride }, box, placement, resolution);
      assert.deepEqual(got, expected, `case ${k} box ${box} original ${width}x${height} resolution ${resolution}`);
      foreground += expected.counts.length;
    }
  }
  assert.ok(foreground > 1000, `only ${foreground} runs compared`);
  // A box outside the image pastes nothing.
  const logits = new Float32Array(maskH * maskW).fill(3);
  const placement = { width: 40, height: 48, resizedWidth: 40, resizedHeight: 48 };
  assert.deepEqual(
    pasteInstanceMaskRle({ logits, height: maskH, width: maskW, stride }, [10, 10, 10, 20], placement),
    referenceInstanceRle(logits, maskH, maskW, stride, [10, 10, 10, 20], placement, 128),
  );
  // Everything foreground: one run of zeros (none), then the whole image.
  assert.deepEqual(pasteInstanceMaskRle({ logits, height: maskH, width: maskW, stride }, [0, 0, 40, 48], placement), {
    size: [48, 40],
    counts: [0, 48 * 40],
  });
});

test('forEachQueryMask gives each query its slice of the mask logits, in query order', () => {
  const [b, q, h, w] = [2, MASK_READ_QUERIES * 2 + 5, 3, 4];
  const values = Float32Array.from({ length: b * q * h * w }, (_, i) => Math.sin(i) * 10);
  const masks = tf.tensor4d(values, [b, q, h, w]);
  const rand = random(8);
  const queries = Array.from({ length: 150 }, () => Math.floor(rand() * q));
  queries.push(0, q - 1, q - 1);
  for (const image of [0, 1]) {
    const seen: number[] = [];
    forEachQueryMask(masks, image, queries, (query, logits) => {
      seen.push(query);
      const start = (image * q + query) * h * w;
      equalBits(Float32Array.from(logits), values.slice(start, start + h * w), `image ${image} query ${query}`);
    });
    assert.deepEqual(
      seen,
      [...new Set(queries)].sort((x, y) => x - y),
    );
  }
  let calls = 0;
  forEachQueryMask(masks, 0, [], () => calls++);
  assert.equal(calls, 0);
  assert.throws(() => forEachQueryMask(masks, 0, [q], () => undefined), /query 133 outside 0..132/);
  assert.throws(() => forEachQueryMask(masks, 2, [0], () => undefined), /image 2 outside 0..1/);
  for (const image of [0, 1]) {
    const one = imageMaskLogits(masks, image);
    assert.deepEqual(one.shape, [q, h * w]);
    equalBits(one.dataSync() as Float32Array, values.slice(image * q * h * w, (image + 1) * q * h * w), 'image');
    one.dispose();
  }
  const single = tf.tensor4d(values.slice(0, q * h * w), [1, q, h, w]);
  const reshaped = imageMaskLogits(single, 0);
  equalBits(reshaped.dataSync() as Float32Array, values.slice(0, q * h * w), 'batch of one');
  tf.dispose([masks, single, reshaped]);
});
