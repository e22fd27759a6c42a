import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Prediction } from '../../src/inference/results.js';
import { decodeRle, encodeRle, rleArea } from '../../src/structures/rle.js';
import { compressRle, decompressRle } from '../../src/structures/rle-string.js';
import { parseCocoResults } from '../../src/evaluation/coco/parse.js';
import {
  predictionFromJson,
  predictionToJson,
  semanticToJson,
  toCocoResults,
} from '../../src/inference/prediction-json.js';
import { checkPrompts, parsePredictRequest } from '../../src/server/predict-request.js';
import { resolveLimits } from '../../src/server/limits.js';
import { HttpError } from '../../src/server/http-error.js';

const W = 6;
const H = 4;

function sample(): Prediction {
  const mask = new Uint8Array(W * H);
  mask[1 * W + 2] = 1;
  mask[2 * W + 2] = 1;
  mask[2 * W + 3] = 1;
  const labels = new Int32Array(W * H).fill(-1);
  labels.fill(1, 0, 12);
  labels.fill(0, 12, 15);
  return {
    width: W,
    height: H,
    prompts: [
      { text: 'grass', kind: 'vocabulary', index: 0 },
      { text: 'sky', kind: 'vocabulary', index: 1 },
      { text: 'the left one', kind: 'sentence', index: 2 },
    ],
    instances: [
      {
        prompt: 'sky',
        promptIndex: 1,
        kind: 'vocabulary',
        score: 0.876543219,
        box: [1.234, 0.5, 4.5, 3.25],
        mask: compressRle(encodeRle(mask, H, W)),
        query: 7,
      },
    ],
    semantic: { width: W, height: H, labels, prompts: ['grass', 'sky', 'the left one'] },
    grounding: [{ sentence: 'the left one', promptIndex: 2, score: 0.5, box: [0, 0, 2, 2], mask: null, query: 1 }],
    warnings: [],
  };
}

test('toCocoResults: COCO result records (xywh, prompt index as category) that the COCO reader accepts', () => {
  const results = toCocoResults(sample(), 42);
  assert.deepEqual(results[0], {
    image_id: 42,
    category_id: 1,
    bbox: [1.23, 0.5, 3.27, 2.75],
    score: 0.87654,
    segmentation: sample().instances[0]!.mask!,
    prompt: 'sky',
    kind: 'vocabulary',
    query: 7,
  });
  const gt = {
    images: [{ id: 42, width: W, height: H }],
    annotations: [],
    categories: [
      { id: 0, name: 'grass' },
      { id: 1, name: 'sky' },
    ],
  };
  const parsed = parseCocoResults(JSON.parse(JSON.stringify(results)), gt);
  assert.equal(parsed.length, 1);
  assert.equal(parsed[0]!.category_id, 1);
});

test('semantic segments: one compressed RLE per prompt present, with its area', () => {
  const json = semanticToJson(sample().semantic!);
  assert.deepEqual(
    json.segments.map((s) => [s.promptIndex, s.prompt, s.area]),
    [
      [0, 'grass', 3],
      [1, 'sky', 12],
    ],
  );
  const sky = decodeRle(decompressRle(json.segments[1]!.segmentation));
  assert.equal(rleArea(decompressRle(json.segments[1]!.segmentation)), 12);
  assert.deepEqual([...sky.subarray(0, 13)], [...Array(12).fill(1), 0]);
});

test('predictionToJson -> JSON text -> predictionFromJson keeps everything drawing needs', () => {
  const original = sample();
  const json = JSON.parse(JSON.stringify(predictionToJson(original, { id: 3, file: 'a.png' })));
  assert.deepEqual(json.image, { width: W, height: H, id: 3, file: 'a.png' });
  assert.deepEqual(json.prompts, [
    { index: 0, text: 'grass', kind: 'vocabulary' },
    { index: 1, text: 'sky', kind: 'vocabulary' },
    { index: 2, text: 'the left one', kind: 'sentence' },
  ]);
  assert.equal(json.grounding[0].segmentation, undefined);
  const back = predictionFromJson(json);
  assert.deepEqual([...back.semantic!.labels], [...original.semantic!.labels]);
  assert.deepEqual(back.instances[0]!.mask, original.instances[0]!.mask);
  assert.deepEqual(back.instances[0]!.box, [1.23, 0.5, 4.5, 3.25]);
  assert.equal(back.instances[0]!.query, 7);
  assert.deepEqual(back.grounding[0], { ...original.grounding[0], mask: null });
});

const limits = resolveLimits({ maxPrompts: 3, maxPromptLength: 10 });
const is = (status: number, code: string) => (e: unknown) =>
  e instanceof HttpError && e.status === status && e.code === code;

test('predict requests: JSON form, comma rule, prompt limits, threshold range', () => {
  const image = Buffer.from([1, 2, 3]).toString('base64');
  const json = (o: unknown) => Buffer.from(JSON.stringify(o));
  const r = parsePredictRequest(
    json({ image: `data:image/png;base64,${image}`, vocabulary: ['a'], prompt: 'b,c', threshold: 0.25 }),
    'application/json',
    limits,
  );
  assert.deepEqual([...r.image], [1, 2, 3]);
  assert.deepEqual([r.vocabulary, r.sentences, r.threshold], [['a', 'b', 'c'], [], 0.25]);
  const s = parsePredictRequest(json({ image, prompt: 'a b,c' }), 'application/json; charset=utf-8', limits);
  assert.deepEqual([s.vocabulary, s.sentences], [[], ['a b', 'c']]);
  assert.throws(
    () => parsePredictRequest(json({ image, vocabulary: ['a', 'b', 'c', 'd'] }), 'application/json', limits),
    is(422, 'too-many-prompts'),
  );
  assert.throws(
    () => parsePredictRequest(json({ image, sentences: ['a very long sentence'] }), 'application/json', limits),
    is(422, 'prompt-too-long'),
  );
  assert.throws(() => parsePredictRequest(json({ image }), 'application/json', limits), is(422, 'no-prompts'));
  assert.throws(
    () => parsePredictRequest(json({ image, vocabulary: ['a'], threshold: 2 }), 'application/json', limits),
    is(422, 'bad-threshold'),
  );
  assert.throws(
    () => parsePredictRequest(json({ image, vocabulary: [''] }), 'application/json', limits),
    is(422, 'empty-prompt'),
  );
  assert.throws(
    () => parsePredictRequest(json({ image, vocabulary: [3] }), 'application/json', limits),
    is(400, 'bad-field'),
  );
  assert.throws(
    () => parsePredictRequest(json({ image: '***', vocabulary: ['a'] }), 'application/json', limits),
    is(400, 'bad-image-encoding'),
  );
  assert.throws(
    () => parsePredictRequest(json({ vocabulary: ['a'] }), 'application/json', limits),
    is(400, 'no-image'),
  );
  assert.throws(
    () => parsePredictRequest(json({ image, vocab: ['a'] }), 'application/json', limits),
    is(400, 'unknown-field'),
  );
  assert.throws(() => parsePredictRequest(Buffer.from('{'), 'application/json', limits), is(400, 'bad-json'));
  assert.throws(() => parsePredictRequest(Buffer.from('x'), 'text/plain', limits), is(415, 'unsupported-content-type'));
  assert.doesNotThrow(() => checkPrompts(['a', 'b'], ['c'], limits));
});
