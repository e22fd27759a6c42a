import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tf } from '../../src/engine/engine.js';
import { loadModel } from '../../src/inference/model-files.js';
import { readSafetensorsHeaderFile } from '../../src/io/safetensors-node.js';
import { filesHash } from '../../src/onnx/export-files.js';
import { createApeServer, type ApeServer } from '../../src/server/app.js';
import { HttpError } from '../../src/server/http-error.js';
import { resolveLimits } from '../../src/server/limits.js';
import { DEFAULT_PAGE_TEXT_TOWER_LIMIT, promptEncodingStatement } from '../../src/server/prompt-encoding.js';
import { parsePromptsRequest } from '../../src/server/prompts-request.js';
import { makeTestModelDir } from './test-model.js';

/**
 * `POST /v1/prompts` (the vectors of prompt texts, for a page that does not hold the text tower)
 * and `GET /v1/model`'s promptEncoding (where the page should encode prompts, by the tower's size).
 */

let model: { dir: string; remove: () => Promise<void> };
let app: ApeServer;
let base: string;
let hash: string;

before(async () => {
  model = await makeTestModelDir(7);
  hash = await filesHash([join(model.dir, 'config.json'), join(model.dir, 'model.safetensors')]);
  app = await createApeServer({ modelDir: model.dir, engine: 'tfjs', limits: { maxPrompts: 4 } });
  base = (await app.listen(0)).url;
});

after(async () => {
  await app?.close();
  await model?.remove();
});

const post = (body: string, type = 'application/json') =>
  fetch(new URL('v1/prompts', base), { method: 'POST', headers: { 'content-type': type }, body });

interface PromptsAnswer {
  model: { name: string; hash: string };
  count: number;
  dim: number;
  encoded: number;
  dtype: string;
  vectors: string;
}

async function vectorsOf(texts: unknown[]): Promise<PromptsAnswer & { values: Float32Array }> {
  const response = await post(JSON.stringify({ texts }));
  assert.equal(response.status, 200, await response.clone().text());
  const body = (await response.json()) as PromptsAnswer;
  const bytes = Buffer.from(body.vectors, 'base64');
  const values = new Float32Array(bytes.length / 4);
  for (let i = 0; i < values.length; i++) values[i] = bytes.readFloatLE(i * 4);
  return { ...body, values };
}

test('GET /v1/model states the text tower size (from the weights header) and that the page encodes a tower under the limit', async () => {
  const header = await readSafetensorsHeaderFile(join(model.dir, 'model.safetensors'));
  const tower = header.tensors
    .filter((t) => t.name.startsWith('model_language.'))
    .reduce((a, t) => a + t.end - t.begin, 0);
  assert.ok(tower > 1e6, `the test model's tower: ${tower} bytes`);
  const info = (await (await fetch(new URL('v1/model', base))).json()) as { promptEncoding: unknown };
  assert.deepEqual(info.promptEncoding, {
    textTowerBytes: tower,
    pageLimitBytes: DEFAULT_PAGE_TEXT_TOWER_LIMIT,
    encodeIn: 'page',
    url: '/v1/prompts',
  });
});

test('promptEncodingStatement: a tower larger than the limit is encoded on the server; at the limit, in the page', () => {
  assert.equal(promptEncodingStatement(2_778_500_000, DEFAULT_PAGE_TEXT_TOWER_LIMIT).encodeIn, 'server');
  assert.equal(promptEncodingStatement(100, 100).encodeIn, 'page');
  assert.equal(promptEncodingStatement(101, 100).encodeIn, 'server');
  assert.equal(promptEncodingStatement(3_750_000, 0).encodeIn, 'server');
});

test("POST /v1/prompts: the vectors of Node's model (TF.js) with the model hash; each new text encoded once, then served from the prompt cache", async () => {
  const texts = ['circle', 'the red star', 'circle'];
  const first = await vectorsOf(texts);
  assert.deepEqual(first.model.hash, hash);
  assert.equal(first.count, 3);
  assert.equal(first.dtype, 'float32');
  assert.equal(first.encoded, 2, 'a text given twice is encoded once');
  const node = await loadModel(model.dir, { engine: 'tfjs', promptCache: false });
  try {
    const expected = node.encodePrompts(texts);
    assert.deepEqual(expected.shape, [3, first.dim]);
    assert.deepEqual(first.values, expected.dataSync());
    tf.dispose(expected);
  } finally {
    node.dispose();
  }
  const again = await vectorsOf(['the red star', 'circle']);
  assert.equal(again.encoded, 0, 'known texts come from the cache');
  assert.deepEqual(
    again.values,
    Float32Array.from([...first.values.subarray(first.dim, 2 * first.dim), ...first.values.subarray(0, first.dim)]),
  );
  const more = await vectorsOf(['circle', 'sand']);
  assert.equal(more.encoded, 1);
});

test('POST /v1/prompts: a bad request is answered 400 (or 415, 422 past a limit) naming the field', async () => {
  const refused = async (body: string, status: number, code: string, message: RegExp, type?: string) => {
    const response = await post(body, type);
    const answer = (await response.json()) as { error: { status: number; code: string; message: string } };
    assert.equal(response.status, status, JSON.stringify(answer));
    assert.equal(answer.error.code, code);
    assert.match(answer.error.message, message);
  };
  await refused('{"texts": ["circle", 3]}', 400, 'bad-field', /^texts\[1\] must be a string, got number$/);
  await refused('{"texts": "circle"}', 400, 'bad-field', /^field 'texts' must be a list of strings$/);
  await refused('{"text": ["circle"]}', 400, 'unknown-field', /^unknown field 'text' \(fields: texts\)$/);
  await refused('{"texts": [', 400, 'bad-json', /^the body is not valid JSON/);
  await refused('{"texts": []}', 422, 'no-prompts', /'texts' is empty/);
  await refused('{"texts": ["a", " "]}', 422, 'empty-prompt', /^texts\[1\] is empty$/);
  await refused('{"texts": ["a", "b", "c", "d", "e"]}', 422, 'too-many-prompts', /^5 texts, more than the limit of 4$/);
  await refused(JSON.stringify({ texts: ['x'.repeat(257)] }), 422, 'prompt-too-long', /^texts\[0\] is 257 characters/);
  await refused('texts=a', 415, 'unsupported-content-type', /send application\/json/, 'text/plain');
  const get = await fetch(new URL('v1/prompts', base));
  assert.equal(get.status, 405);
});

test('parsePromptsRequest keeps each text exactly as sent (no trimming, no splitting at commas)', () => {
  const limits = resolveLimits();
  const texts = parsePromptsRequest(
    Buffer.from('{"texts": [" a cat ", "red, blue"]}'),
    'application/json; charset=utf-8',
    limits,
  );
  assert.deepEqual(texts, [' a cat ', 'red, blue']);
  assert.throws(
    () => parsePromptsRequest(Buffer.from('[1]'), 'application/json', limits),
    (e: unknown) => e instanceof HttpError && e.status === 400 && e.code === 'bad-json',
  );
});
