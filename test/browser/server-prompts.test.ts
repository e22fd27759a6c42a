import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { initEngine, tf } from '../../src/engine/engine.js';
import { loadModel } from '../../src/inference/model-files.js';
import type { PredictionJson } from '../../src/inference/prediction-json.js';
import type { SafetensorsHeader } from '../../src/io/safetensors.js';
import { readSafetensorsHeaderFile } from '../../src/io/safetensors-node.js';
import { exportKey } from '../../src/onnx/export-network.js';
import { makeTestModelDir } from '../server/test-model.js';
import {
  assertSameResults,
  buildTestBundle,
  launchChromium,
  root,
  runInBrowserMode,
  servePage,
  serverPrediction,
  tensorsFetched,
  type ServedPage,
  weightResponses,
} from './page-harness.js';

/**
 * The page with a text tower too large for it (Debian's Chromium, headless): the server states
 * its tower's size against a page limit (here 0, so the tiny test model takes the path the
 * released models' 2.78 GB tower takes), and the page asks the server for its prompts' vectors
 * (POST /v1/prompts) instead of downloading the tower's weights or its text export; the network
 * still runs in the page on onnxruntime-web.
 */

let model: { dir: string; remove: () => Promise<void> };
let served: ServedPage;
let browser: Browser;
let serverJson: PredictionJson;
let header: SafetensorsHeader;
let vectorsBundle: string;
const PROMPTS = {
  vocabulary: ['circle', 'star', 'sky', 'sand'],
  sentences: ['the red cross to the right of the red star'],
};

before(async () => {
  model = await makeTestModelDir(29, ['circle', 'star', 'sky', 'sand', 'the', 'red', 'cross', 'to', 'right', 'of']);
  served = await servePage(model.dir, { pageTextTowerLimit: 0 });
  browser = await launchChromium();
  header = await readSafetensorsHeaderFile(join(model.dir, 'model.safetensors'));
  vectorsBundle = await buildTestBundle(served.webDir, join(root, 'test/browser/fixtures/prompt-vectors.ts'));
  serverJson = await serverPrediction(served.url, PROMPTS);
  await initEngine({ backend: 'wasm' });
});

after(async () => {
  await browser?.close();
  await served?.close();
  await model?.remove();
});

const isTower = (name: string) => name.startsWith('model_language.');
const isClassifier = (name: string) => name.startsWith('class_embed.0.');
const towerMb = () =>
  (header.tensors.filter((t) => isTower(t.name)).reduce((a, t) => a + t.end - t.begin, 0) / 1e6).toFixed(1);

test("the page sends its prompts to the server (POST /v1/prompts, once), fetches neither the text export nor the tower's weights, says so, and matches the server", async () => {
  const run = await runInBrowserMode(browser, served.url, PROMPTS);
  assertSameResults(run.json, serverJson, 'the page with prompts encoded by the server vs the server (TF.js)');
  assert.match(
    run.status,
    /^model test-tiny · in this browser \(onnxruntime-web 1\.30\.0, wasm, \d threads?\) · prompts encoded by the server$/,
  );
  const key = exportKey({ size: 128, vocabulary: 0, sentences: 1 });
  assert.deepEqual(
    run.responses
      .filter((r) => r.path.startsWith('/v1/onnx') || r.path === '/v1/prompts')
      .map((r) => `${r.method} ${r.status} ${r.path}`),
    [
      'GET 200 /v1/onnx',
      'POST 200 /v1/prompts',
      'GET 200 /v1/onnx/export',
      `GET 200 /v1/onnx/${key}/segment-0.onnx`,
      `GET 200 /v1/onnx/${key}/segment-1.onnx`,
    ],
  );
  const fetched = tensorsFetched(header, weightResponses(run));
  assert.deepEqual([...fetched.names], header.tensors.map((t) => t.name).filter(isClassifier));
  assert.match(
    run.messages.find((m) => m.startsWith('model loaded in')) ?? run.messages.join('\n'),
    new RegExp(
      `^model loaded in \\d+ ms \\(its classifier: [\\d.]+ of [\\d.]+ MB of weights; the network runs the server's ONNX graphs; the server encodes the prompts \\(its text tower, ${towerMb()} MB, is too large for this page\\)\\)$`,
    ),
  );
  assert.equal(run.warnings, null);
  assert.deepEqual(run.errors, []);
});

test("the server's prompt vectors in the page equal Node's (TF.js); asked for twice, each text is sent once", async () => {
  const texts = ['circle', 'star', 'the red cross', 'circle', 'sky sand'];
  const page = await browser.newPage();
  const posts: number[] = [];
  page.on('response', (r) => {
    if (new URL(r.url()).pathname === '/v1/prompts') posts.push(r.status());
  });
  let inPage: { vectors: number[][]; weights: { parts: string }; sentToServer: number };
  try {
    await page.goto(served.url);
    inPage = await page.evaluate(
      async ([bundle, texts]) => {
        const { promptVectors } = await import(bundle as string);
        return promptVectors(texts, 2);
      },
      [vectorsBundle, texts] as const,
    );
  } finally {
    await page.close();
  }
  assert.equal(inPage.weights.parts, 'classifier');
  assert.equal(inPage.sentToServer, 4, 'the four distinct texts, once');
  assert.deepEqual(posts, [200]);
  const node = await loadModel(model.dir, { engine: 'tfjs', promptCache: false });
  try {
    const expected = node.encodePrompts(texts);
    assert.deepEqual(Float32Array.from(inPage.vectors.flat()), expected.dataSync());
    tf.dispose(expected);
  } finally {
    node.dispose();
  }
});

test("a refused network export: the page makes its graphs from the detector (the tower's weights still not fetched) and matches", async () => {
  const run = await runInBrowserMode(browser, served.url, PROMPTS, {
    url: /\/v1\/onnx\/export\?/,
    handle: async (route) => {
      const response = await route.fetch();
      const manifest = await response.json();
      await route.fulfill({ response, json: { ...manifest, model: { ...manifest.model, hash: 'f'.repeat(64) } } });
    },
  });
  assert.match(run.warnings ?? '', /was made from other weights .*; the graphs were made in this page instead$/);
  assert.match(run.timing, /: export \d+ ms, /);
  const fetched = tensorsFetched(header, weightResponses(run));
  assert.deepEqual(
    [...fetched.names].sort(),
    header.tensors
      .map((t) => t.name)
      .filter((n) => !isTower(n))
      .sort(),
  );
  assertSameResults(run.json, serverJson, "the page's own graphs from the detector vs the server");
  assert.deepEqual(run.errors, []);
});

test('a bad request to POST /v1/prompts from the page is answered 400 naming the field', async () => {
  const page = await browser.newPage();
  try {
    await page.goto(served.url);
    const answer = await page.evaluate(async () => {
      const response = await fetch('v1/prompts', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ texts: ['circle', null] }),
      });
      return { status: response.status, body: await response.json() };
    });
    assert.deepEqual(answer, {
      status: 400,
      body: { error: { status: 400, code: 'bad-field', message: 'texts[1] must be a string, got null' } },
    });
  } finally {
    await page.close();
  }
});
