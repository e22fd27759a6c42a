import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePng } from '../../src/io/image-node.js';
import { createApeServer, type ApeServer } from '../../src/server/app.js';
import { HttpError } from '../../src/server/http-error.js';
import { DEFAULT_SCORE_THRESHOLD } from '../../src/inference/results.js';
import type { PredictionJson } from '../../src/inference/prediction-json.js';
import { decodeRle } from '../../src/structures/rle.js';
import { decompressRle } from '../../src/structures/rle-string.js';
import { createRgbImage } from '../../src/viz/image.js';
import { makeTestModelDir } from './test-model.js';
import { startServer } from './server-process.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
let model: { dir: string; remove: () => Promise<void> };
let scene: Buffer;
/** One server for the tests that do not close it. */
let shared: { app: ApeServer; url: string };

before(async () => {
  model = await makeTestModelDir();
  scene = await readFile(join(root, 'examples', 'scene-2.png'));
  shared = await inProcess();
});

after(async () => {
  await shared?.app.close();
  await model?.remove();
});

async function inProcess(
  limits: Parameters<typeof createApeServer>[0]['limits'] = {},
): Promise<{ app: ApeServer; url: string }> {
  const app = await createApeServer({ modelDir: model.dir, limits, webDir: join(root, 'no-page') });
  await app.host.start();
  const { url } = await app.listen(0);
  return { app, url };
}

/** Resolves once the server has taken in `n` requests (counted from now). */
function requestsTaken(app: ApeServer, n: number): Promise<void> {
  let seen = 0;
  return new Promise((resolve) => {
    const onRequest = () => {
      if (++seen < n) return;
      app.server.off('request', onRequest);
      resolve();
    };
    app.server.on('request', onRequest);
  });
}

const predict = (url: string, fields: Record<string, string>, image: Uint8Array = scene) => {
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(image)]), 'scene.png');
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return fetch(new URL('/v1/predict', url), { method: 'POST', body: form });
};

test('405 answers carry an Allow header naming the methods', async () => {
  const { url } = shared;
  const post = await fetch(new URL('/v1/health', url), { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  const get = await fetch(new URL('/v1/predict', url));
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
});

test(`the API keeps instances scoring above ${DEFAULT_SCORE_THRESHOLD} unless told otherwise, as the CLI does`, async () => {
  const { url } = shared;
  const all = (await (
    await predict(url, { vocabulary: 'circle,square,star', threshold: '0' })
  ).json()) as PredictionJson;
  const byDefault = (await (await predict(url, { vocabulary: 'circle,square,star' })).json()) as PredictionJson;
  assert.ok(
    all.instances.some((i) => i.score <= DEFAULT_SCORE_THRESHOLD),
    'the test needs some low-scoring instances',
  );
  // Class-wise NMS and top-K keep higher-scored instances regardless of lower ones, so the
  // default answer is exactly the threshold-0 answer cut at the default.
  assert.deepEqual(
    byDefault.instances,
    all.instances.filter((i) => i.score > DEFAULT_SCORE_THRESHOLD),
  );
});

test('the default pixel budget follows the model: (4 x its input side)^2; --max-pixels overrides it', async () => {
  const { app, url } = shared;
  assert.equal(app.limits.maxImagePixels, 512 * 512); // the test model's input is 128
  const atBudget = await predict(url, { vocabulary: 'circle' }, await encodePng(createRgbImage(512, 512, [0, 0, 0])));
  assert.equal(atBudget.status, 200);
  const over = await predict(url, { vocabulary: 'circle' }, await encodePng(createRgbImage(513, 512, [0, 0, 0])));
  assert.equal(over.status, 413);
  assert.match(((await over.json()) as { error: { message: string } }).error.message, /262144/);
  const wider = await inProcess({ maxImagePixels: 2_000_000 });
  assert.equal(wider.app.limits.maxImagePixels, 2_000_000);
  await wider.app.close();
});

test('inputSize (ape serve --size) runs the model at that size and sets the pixel budget from it', async () => {
  const app = await createApeServer({ modelDir: model.dir, inputSize: 64, webDir: join(root, 'no-page') });
  after(() => app.close());
  const info = await app.host.start();
  assert.equal((info.config as { input: { size: number } }).input.size, 64);
  assert.equal(app.limits.maxImagePixels, 256 * 256);
});

test('a large upload is answered in its own size', async () => {
  const { app, url } = await inProcess({ maxImagePixels: 2_000_000 });
  after(() => app.close());
  const big = await encodePng(createRgbImage(1500, 1000, [0, 0, 0]));
  const answer = await predict(url, { vocabulary: 'circle,sky', threshold: '0' }, big);
  assert.equal(answer.status, 200);
  const p = (await answer.json()) as PredictionJson;
  assert.deepEqual(p.image, { width: 1500, height: 1000, id: 0 });
  assert.ok(p.instances.length > 0);
  for (const inst of p.instances) {
    assert.deepEqual(inst.segmentation!.size, [1000, 1500]);
    assert.equal(decodeRle(decompressRle(inst.segmentation!)).length, 1500 * 1000);
    const [x, y, w, h] = inst.bbox;
    assert.ok(x >= 0 && y >= 0 && x + w <= 1500 + 1e-3 && y + h <= 1000 + 1e-3, `bbox ${inst.bbox}`);
  }
  assert.equal(p.semantic!.width, 1500);
  assert.equal(p.semantic!.segments.reduce((n, s) => n + s.area, 0) <= 1500 * 1000, true);
});

test('a run stopped past its deadline answers 504 and the model worker is loaded afresh', async () => {
  const { app } = await inProcess();
  try {
    const controller = new AbortController();
    const image = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3) };
    const running = app.host.predict({ image, vocabulary: ['circle'], sentences: [] }, controller.signal);
    await new Promise((r) => setTimeout(r, 0));
    controller.abort();
    await assert.rejects(
      running,
      (e: unknown) => e instanceof HttpError && e.status === 504 && /while the model was running/.test(e.message),
    );
    assert.equal(app.host.restarts, 1);
    await app.host.start();
    assert.equal(app.host.loaded, true);
  } finally {
    await app.close();
  }
});

test('closing with requests in flight answers them; requests after the close began get 503 or no connection', async () => {
  const { app, url } = await inProcess();
  const taken = requestsTaken(app, 2);
  const inFlight = [predict(url, { vocabulary: 'circle' }), predict(url, { vocabulary: 'star' })];
  await taken;
  const closing = app.close(20_000);
  const answers = await Promise.all(inFlight);
  assert.deepEqual(
    answers.map((a) => a.status),
    [200, 200],
  );
  const late = await predict(url, { vocabulary: 'circle' }).then(
    (a) => a.status,
    () => 'refused',
  );
  assert.ok(late === 503 || late === 'refused', String(late));
  await closing;
});

test('past the grace period, requests still in flight are answered 503 shutting-down, not dropped', async () => {
  const { app, url } = await inProcess();
  const taken = requestsTaken(app, 3);
  const inFlight = [
    predict(url, { vocabulary: 'circle' }),
    predict(url, { vocabulary: 'star' }),
    predict(url, { vocabulary: 'sky' }),
  ];
  await taken;
  await app.close(0);
  const answers = await Promise.all(inFlight);
  for (const answer of answers) {
    if (answer.status === 200) continue;
    assert.equal(answer.status, 503);
    assert.equal(((await answer.json()) as { error: { code: string } }).error.code, 'shutting-down');
  }
  assert.ok(
    answers.some((a) => a.status === 503),
    `statuses ${answers.map((a) => a.status)}`,
  );
});

test('ape serve on SIGTERM finishes the request in flight before it exits', async () => {
  const server = await startServer(['--model', model.dir]);
  const body = JSON.stringify({ image: scene.toString('base64'), vocabulary: ['circle', 'square'] });
  let settled = false;
  const answer = fetch(new URL('/v1/predict', server.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  void answer.finally(() => (settled = true)).catch(() => undefined);
  // Signal once the model is working on it (or it is already answered).
  for (let running = false; !running && !settled; ) {
    const health = (await (await fetch(new URL('/v1/health', server.url))).json()) as { queue: { running: number } };
    running = health.queue.running === 1;
  }
  await server.stop();
  const result = await answer.then(
    (a) => a.status,
    (e: Error) => `no answer: ${e.message}`,
  );
  assert.equal(result, 200, server.output());
  assert.match(server.output(), /shutting down/);
});
