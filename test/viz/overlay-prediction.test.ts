import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Prediction } from '../../src/inference/results.js';
import { encodeRle } from '../../src/structures/rle.js';
import { compressRle } from '../../src/structures/rle-string.js';
import { createRgbImage } from '../../src/viz/image.js';
import { drawInstances, promptColor, shortLabel } from '../../src/viz/overlay-prediction.js';
import { drawSemantic, semanticAreas, semanticColorMap } from '../../src/viz/semantic-map.js';

const W = 40;
const H = 30;

function rectMask(x0: number, y0: number, x1: number, y1: number) {
  const m = new Uint8Array(W * H);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * W + x] = 1;
  return compressRle(encodeRle(m, H, W));
}

function prediction(): Prediction {
  return {
    width: W,
    height: H,
    prompts: [
      { text: 'circle', kind: 'vocabulary', index: 0 },
      { text: 'the big one', kind: 'sentence', index: 1 },
    ],
    instances: [
      {
        prompt: 'circle',
        promptIndex: 0,
        kind: 'vocabulary',
        score: 0.9,
        box: [2, 2, 12, 12],
        mask: rectMask(4, 4, 10, 10),
        query: 3,
      },
      {
        prompt: 'circle',
        promptIndex: 0,
        kind: 'vocabulary',
        score: 0.2,
        box: [20, 15, 30, 25],
        mask: rectMask(22, 17, 28, 23),
        query: 5,
      },
    ],
    semantic: null,
    grounding: [{ sentence: 'the big one', promptIndex: 1, score: 0.7, box: [30, 2, 38, 10], mask: null, query: 9 }],
    warnings: [],
  };
}

const px = (img: { width: number; data: Uint8Array }, x: number, y: number) => [
  ...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3),
];

test('drawInstances: masks tinted in the prompt colour, boxes outlined, the input untouched', () => {
  const base = createRgbImage(W, H, [100, 100, 100]);
  const out = drawInstances(base, prediction(), { labels: false, maskAlpha: 0.5 });
  assert.deepEqual(px(base, 6, 6), [100, 100, 100]);
  const c = promptColor(0);
  // Inside the mask, away from its outline: half way from grey to the colour.
  assert.deepEqual(
    px(out, 6, 6),
    c.map((v) => Math.round(100 + (v - 100) * 0.5)),
  );
  // Mask outline and box line carry the plain colour.
  assert.deepEqual(px(out, 4, 6), [...c]);
  assert.deepEqual(px(out, 2, 7), [...c]);
  assert.deepEqual(px(out, 11, 11), [...c]);
  // Outside every instance nothing changes.
  assert.deepEqual(px(out, 15, 5), [100, 100, 100]);
  // The grounding result (query 9 is no instance) is drawn in the sentence's colour.
  assert.deepEqual(px(out, 30, 5), [...promptColor(1)]);
});

test('drawInstances: score threshold, switches and grounding that repeats an instance', () => {
  const base = createRgbImage(W, H, [100, 100, 100]);
  const high = drawInstances(base, prediction(), { scoreThreshold: 0.5, labels: false, grounding: false });
  assert.deepEqual(px(high, 24, 20), [100, 100, 100], 'the 0.2 instance is left out');
  assert.notDeepEqual(px(high, 6, 6), [100, 100, 100]);
  assert.deepEqual(px(high, 30, 5), [100, 100, 100], 'grounding off');
  const boxesOnly = drawInstances(base, prediction(), { masks: false, labels: false });
  assert.deepEqual(px(boxesOnly, 6, 6), [100, 100, 100]);
  assert.deepEqual(px(boxesOnly, 2, 7), [...promptColor(0)]);
  // A grounding result that is the same query as an instance is not drawn twice.
  const p = prediction();
  p.grounding = [{ sentence: 'the big one', promptIndex: 0, score: 0.9, box: [0, 0, 40, 30], mask: null, query: 3 }];
  const once = drawInstances(base, p, { masks: false, labels: false });
  assert.deepEqual(px(once, 0, 0), [100, 100, 100]);
});

test('drawInstances: labels read "prompt score" on a tag; sizes must match', () => {
  const base = createRgbImage(W, H, [0, 0, 0]);
  const withLabels = drawInstances(base, prediction(), {
    masks: false,
    boxes: false,
    grounding: false,
    scoreThreshold: 0.5,
  });
  const without = drawInstances(base, prediction(), {
    masks: false,
    boxes: false,
    grounding: false,
    scoreThreshold: 0.5,
    labels: false,
  });
  // The tag of the 0.9 circle starts one pixel inside its box corner (2, 2) and is filled.
  assert.notDeepEqual(px(withLabels, 3, 3), [0, 0, 0]);
  assert.deepEqual(px(without, 3, 3), [0, 0, 0]);
  assert.throws(
    () => drawInstances(createRgbImage(10, 10), prediction()),
    /prediction is for a 40x30 image, this one is 10x10/,
  );
  assert.equal(shortLabel('the red star on the left', 10), 'the red...');
  assert.equal(shortLabel('circle', 10), 'circle');
});

test('semantic map: areas, colours, background, legend panel', () => {
  const labels = new Int32Array(W * H).fill(-1);
  for (let i = 0; i < 600; i++) labels[i] = 2; // rows 0-14
  for (let i = 600; i < 900; i++) labels[i] = 0; // rows 15-22
  const semantic = { width: W, height: H, labels, prompts: ['sky', 'circle', 'grass'] };
  const areas = semanticAreas(semantic);
  assert.deepEqual(
    areas.map((a) => [a.prompt, a.pixels]),
    [
      ['grass', 600],
      ['sky', 300],
    ],
  );
  assert.equal(areas[0]!.fraction, 0.5);
  const colors = semanticColorMap(semantic, [1, 2, 3]);
  assert.deepEqual(px(colors, 0, 0), [...promptColor(2)]);
  assert.deepEqual(px(colors, 0, 20), [...promptColor(0)]);
  assert.deepEqual(px(colors, 0, 29), [1, 2, 3]);

  const image = createRgbImage(W, H, [200, 200, 200]);
  const bare = drawSemantic(image, semantic, { legend: false, alpha: 1 });
  assert.equal(bare.width, W);
  assert.deepEqual(px(bare, 5, 5), [...promptColor(2)]);
  const withLegend = drawSemantic(image, semantic);
  assert.ok(withLegend.width > W, 'a legend panel to the right');
  assert.ok(withLegend.height >= H);
  // Blended at 0.6 over the image.
  assert.deepEqual(
    px(withLegend, 5, 5),
    promptColor(2).map((v) => Math.round(200 + (v - 200) * 0.6)),
  );
  // The first legend row's swatch (largest area first: grass) sits in the panel.
  const panel = withLegend.data;
  let found = false;
  for (let y = 0; y < withLegend.height && !found; y++) {
    for (let x = W; x < withLegend.width; x++) {
      const [r, g, b] = px({ width: withLegend.width, data: panel }, x, y);
      if (r === promptColor(2)[0] && g === promptColor(2)[1] && b === promptColor(2)[2]) {
        found = true;
        break;
      }
    }
  }
  assert.ok(found, 'the grass swatch is drawn in the legend');
  assert.throws(() => drawSemantic(createRgbImage(5, 5), semantic), /map is 40x30, the image 5x5/);
});
