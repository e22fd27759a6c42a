import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import { boxesToPixels, pasteInstanceMask, selectInstances } from '../../src/inference/instances.js';
import { semanticAccumulator, semanticLabels } from '../../src/inference/semantic.js';
import { prepareImages, resizedSize } from '../../src/inference/preprocess.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

// Three queries, two prompts. q0 and q1 overlap with IoU 0.81, q2 is elsewhere.
const boxes = Float32Array.from([0, 0, 10, 10, 1, 1, 10, 10, 20, 20, 30, 30]);
const scores = Float32Array.from([0.9, 0.2, 0.8, 0.7, 0.1, 0.05]);

test('instances: strict threshold, class-wise NMS, top-k', () => {
  const r = selectInstances(scores, 3, 2, boxes, { threshold: 0.1, nmsThreshold: 0.7, topK: 10 });
  // Prompt 0: q0 (0.9) suppresses q1 (0.8); prompt 1: q1 (0.7) suppresses q0 (0.2); 0.1 is not > 0.1.
  assert.deepEqual(
    r.map((x) => [x.query, x.prompt]),
    [
      [0, 0],
      [1, 1],
    ],
  );
  assert.ok(Math.abs(r[1]!.score - 0.7) < 1e-6);
  assert.deepEqual(
    selectInstances(scores, 3, 2, boxes, { threshold: 0.1, nmsThreshold: 0.7, topK: 1 }).map((x) => x.query),
    [0],
  );
  const loose = selectInstances(scores, 3, 2, boxes, { threshold: 0, nmsThreshold: 0.85, topK: 10 });
  assert.deepEqual(
    loose.map((x) => [x.query, x.prompt]),
    [
      [0, 0],
      [1, 0],
      [1, 1],
      [0, 1],
      [2, 0],
      [2, 1],
    ],
  );
  // Boxes of other prompts never suppress: same box, two prompts, both kept.
  const same = selectInstances(Float32Array.from([0.9, 0.8]), 1, 2, Float32Array.from([0, 0, 5, 5]), {
    threshold: 0,
    nmsThreshold: 0.5,
    topK: 5,
  });
  assert.equal(same.length, 2);
});

test('instances: boxes from normalised cxcywh to clipped input pixels', () => {
  const px = boxesToPixels(Float32Array.from([0.5, 0.5, 0.5, 0.5, 0.9, 0.1, 0.4, 0.4]), 200, 100);
  assert.deepEqual(Array.from(px), [50, 25, 150, 75, 140, 0, 200, 30]);
});

test('instance mask: the logits zero crossing, restricted to the box, at the original size', () => {
  // 4x4 logits at stride 4 (a 16x16 input): positive in columns 0-1, negative in 2-3; the
  // bilinear zero crossing is at input x = 8.
  const logits = Float32Array.from({ length: 16 }, (_, i) => (i % 4 < 2 ? 5 : -5));
  const map = { logits, height: 4, width: 4, stride: 4 };
  const placement = (size: number) => ({ width: size, height: size, resizedWidth: 16, resizedHeight: 16 });
  const full = pasteInstanceMask(map, [0, 0, 16, 16], placement(16));
  for (let y = 0; y < 16; y++)
    for (let x = 0; x < 16; x++) assert.equal(full[y * 16 + x], x < 8 ? 1 : 0, `(${x}, ${y})`);
  const boxed = pasteInstanceMask(map, [0, 0, 4, 16], placement(16));
  for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) assert.equal(boxed[y * 16 + x], x < 4 ? 1 : 0);
  // Original image twice the input size: the box and mask scale with it.
  const big = pasteInstanceMask(map, [0, 0, 16, 16], placement(32));
  for (let x = 0; x < 32; x++) assert.equal(big[5 * 32 + x], x < 16 ? 1 : 0);
});

test('semantic accumulation: softmax(sigmoid(logits) / T) over prompts weights each query mask', () => {
  const logits = [
    [2, -1, 0.5],
    [-3, 1, 0],
  ];
  const masks = [
    [1, -2, 0, 3],
    [0.5, 0.5, -1, 2],
  ];
  const t = 0.06;
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  const weights = logits.map((row) => {
    const e = row.map((x) => Math.exp(sig(x) / t));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / s);
  });
  const expected = [0, 1, 2].map((c) =>
    [0, 1, 2, 3].map((k) => weights[0]![c]! * sig(masks[0]![k]!) + weights[1]![c]! * sig(masks[1]![k]!)),
  );
  const acc = semanticAccumulator(tf.tensor2d(logits), tf.tensor2d(masks), t);
  const all = acc.source(0, 3);
  assert.deepEqual(all.shape, [4, 3]);
  const got = all.arraySync();
  expected.forEach((row, c) =>
    row.forEach((v, k) => assert.ok(Math.abs(got[k]![c]! - v) < 1e-5, `${c},${k}: ${got[k]![c]} vs ${v}`)),
  );
  const part = acc.source(1, 2).arraySync();
  expected.slice(1).forEach((row, c) => row.forEach((v, k) => assert.ok(Math.abs(part[k]![c]! - v) < 1e-5)));
  acc.dispose();
});

/** A semanticLabels source over host maps laid out [prompt][pixel]. */
function hostSource(values: Float32Array, pixels: number) {
  return (start: number, count: number) =>
    tf.tidy(
      () =>
        tf.transpose(
          tf.tensor2d(values.slice(start * pixels, (start + count) * pixels), [count, pixels]),
        ) as tf.Tensor2D,
    );
}

test('semantic labels: bilinear per-prompt maps, argmax, background 0.1 (hand-computed)', () => {
  // Two prompts on a 2x2 grid at stride 2 (a 4x4 input, the original size).
  const values = Float32Array.from([0.5, 0, 0, 0, /* prompt 1 */ 0, 0.3, 0, 0.05]);
  const geometry = { maskH: 2, maskW: 2, stride: 2, resizedW: 4, resizedH: 4, width: 4, height: 4 };
  const labels = semanticLabels(hostSource(values, 4), 2, geometry, 0.1);
  assert.deepEqual(Array.from(labels), [0, 0, 1, 1, 0, 0, 1, 1, 0, -1, -1, 1, -1, -1, -1, -1]);
  // A prompt equal to the background wins (argmax takes the first maximum; background is last).
  const tie = semanticLabels(
    hostSource(Float32Array.from([0.1]), 1),
    1,
    { maskH: 1, maskW: 1, stride: 4, resizedW: 4, resizedH: 4, width: 2, height: 2 },
    0.1,
  );
  assert.deepEqual(Array.from(tie), [0, 0, 0, 0]);
  // Equal prompts: the lower index wins.
  const equal = semanticLabels(
    hostSource(Float32Array.from([0.4, 0.4]), 1),
    2,
    { maskH: 1, maskW: 1, stride: 4, resizedW: 4, resizedH: 4, width: 1, height: 1 },
    0.1,
  );
  assert.deepEqual(Array.from(equal), [0]);
});

test('semantic labels agree with interpolating every prompt everywhere (random case)', () => {
  let seed = 3;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const p = 7;
  const h = 5;
  const w = 6;
  const values = Float32Array.from({ length: p * h * w }, () => rand() * 0.3);
  const geometry = { maskH: h, maskW: w, stride: 8, resizedW: 45, resizedH: 37, width: 61, height: 50 };
  const labels = semanticLabels(hostSource(values, h * w), p, geometry, 0.1);
  // Prompts in chunks of 2 (each map computed twice) give the same labels.
  assert.deepEqual(
    Array.from(semanticLabels(hostSource(values, h * w), p, geometry, 0.1, 2 * h * w)),
    Array.from(labels),
  );
  for (let y = 0; y < geometry.height; y++) {
    for (let x = 0; x < geometry.width; x++) {
      const vy = Math.min(Math.max(((y + 0.5) * 37) / 50 / 8 - 0.5, 0), h - 1);
      const vx = Math.min(Math.max(((x + 0.5) * 45) / 61 / 8 - 0.5, 0), w - 1);
      let best = -1;
      let bestV = 0.1;
      for (let c = 0; c < p; c++) {
        const m = values.subarray(c * h * w, (c + 1) * h * w);
        const i0 = Math.floor(vy);
        const j0 = Math.floor(vx);
        const i1 = Math.min(i0 + 1, h - 1);
        const j1 = Math.min(j0 + 1, w - 1);
        const ay = vy - i0;
        const ax = vx - j0;
        const v =
          (m[i0 * w + j0]! * (1 - ax) + m[i0 * w + j1]! * ax) * (1 - ay) +
          (m[i1 * w + j0]! * (1 - ax) + m[i1 * w + j1]! * ax) * ay;
        if (v > bestV || (best === -1 && v >= bestV)) {
          best = c;
          bestV = v;
        }
      }
      assert.equal(labels[y * geometry.width + x], best, `pixel (${x}, ${y})`);
    }
  }
});

test('preprocess: long side to the input size, top-left placement, zero canvas elsewhere', () => {
  assert.deepEqual(resizedSize(300, 200, 64), [64, 43]);
  assert.deepEqual(resizedSize(100, 400, 256), [64, 256]);
  const data = new Uint8Array(300 * 200 * 3).fill(200);
  const { batch, placements } = prepareImages([{ width: 300, height: 200, data }], 64);
  assert.deepEqual(batch.sizes, [[43, 64]]);
  assert.deepEqual(placements[0], { width: 300, height: 200, resizedWidth: 64, resizedHeight: 43 });
  const px = batch.images.arraySync() as number[][][][];
  assert.equal(px[0]![42]![63]![0], 200);
  assert.equal(px[0]![43]![0]![0], 0);
  batch.images.dispose();
  assert.throws(() => prepareImages([{ width: 2, height: 2, data: new Uint8Array(5) }], 64), /image 0/);
});

test('instance mask RLE: the windowed paste encodes exactly the full-image paste', async () => {
  const { encodeRle } = await import('../../src/structures/rle.js');
  const { pasteInstanceMaskRle } = await import('../../src/inference/instances.js');
  let seed = 5;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const logits = Float32Array.from({ length: 8 * 8 }, () => rand() * 4 - 2);
  const boxes: [number, number, number, number][] = [
    [3.2, 5.7, 40.1, 33.3],
    [0, 0, 64, 64],
    [50.5, 60, 63.9, 64],
    [10, 10, 10, 30],
  ];
  for (const box of boxes) {
    // Scales 1 x 1, 1.5 x 0.75 and 0.5 x 0.5 from the 64 x 64 input to the original.
    for (const [w, h] of [
      [64, 64],
      [96, 48],
      [32, 32],
    ] as const) {
      const map = { logits, height: 8, width: 8, stride: 8 };
      const placement = { width: w, height: h, resizedWidth: 64, resizedHeight: 64 };
      const full = encodeRle(pasteInstanceMask(map, box, placement), h, w);
      assert.deepEqual(pasteInstanceMaskRle(map, box, placement), full, `box ${box} original ${w}x${h}`);
    }
  }
});
