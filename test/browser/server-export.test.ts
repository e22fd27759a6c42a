import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page, Route } from 'playwright-core';
import { initEngine } from '../../src/engine/engine.js';
import { loadModel } from '../../src/inference/model-files.js';
import type { PredictionJson } from '../../src/inference/prediction-json.js';
import { filesHash, writeNetworkExport } from '../../src/onnx/export-files.js';
import { exportKey, exportNetwork, type ExportShape } from '../../src/onnx/export-network.js';
import { makeTestModelDir } from '../server/test-model.js';
import {
  assertSameResults,
  downloadedJson,
  launchChromium,
  root,
  servePage,
  type ServedPage,
  waitForState,
} from './page-harness.js';

/**
 * The page's in-browser mode with the server's ONNX exports (Debian's Chromium, headless): it
 * loads the model's prompt side only and runs the export the server caches next to the model;
 * it refuses an export whose manifest names other weights and makes the graphs itself; it loads a
 * segment whose weights are in an external data file; without the server's exports (a static
 * page) it loads the whole model and makes its graphs, as before.
 */

let model: { dir: string; remove: () => Promise<void> };
let served: ServedPage;
let browser: Browser;
let serverJson: PredictionJson;
let hash: string;
let weightsBytes: number;
const PROMPTS = {
  vocabulary: ['circle', 'star', 'sky', 'sand'],
  sentences: ['the red cross to the right of the red star'],
};
/** The export shape the page asks for with scene-2.png (a square image: the whole 128-pixel input). */
let shape: ExportShape;

before(async () => {
  model = await makeTestModelDir(23, ['circle', 'star', 'sky', 'sand', 'the', 'red', 'cross', 'to', 'right', 'of']);
  served = await servePage(model.dir);
  browser = await launchChromium();
  const weights = join(model.dir, 'model.safetensors');
  hash = await filesHash([join(model.dir, 'config.json'), weights]);
  weightsBytes = (await readFile(weights)).length;
  const scene = await readFile(join(root, 'examples', 'scene-2.png'));
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(scene)]), 'scene-2.png');
  form.append('vocabulary', PROMPTS.vocabulary.join(','));
  form.append('sentences', PROMPTS.sentences.join('\n'));
  form.append('threshold', '0');
  form.append('semanticThreshold', '0');
  const answer = await fetch(new URL('v1/predict', served.url), { method: 'POST', body: form });
  assert.equal(answer.status, 200);
  serverJson = (await answer.json()) as PredictionJson;
  await initEngine({ backend: 'wasm' });
  // One export serves every aspect ratio: the shape is the input size and the sentence bucket.
  shape = { size: 128, vocabulary: 0, sentences: 1 };
});

after(async () => {
  await browser?.close();
  await served?.close();
  await model?.remove();
});

interface PageRun {
  json: PredictionJson;
  timing: string;
  warnings: string | null;
  /** Every text the message line showed (progress of downloads among them). */
  messages: string[];
  responses: { path: string; status: number; range: string | undefined }[];
  errors: string[];
}

/** Runs scene-2.png with PROMPTS in the page's in-browser mode (onnxruntime-web), in a fresh page; `intercept` sees the page's requests first. */
async function runInPage(intercept?: {
  url: string | RegExp;
  handle: (route: Route) => Promise<void>;
}): Promise<PageRun> {
  const page: Page = await browser.newPage();
  const errors: string[] = [];
  const responses: PageRun['responses'] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('response', (r) =>
    responses.push({ path: new URL(r.url()).pathname, status: r.status(), range: r.request().headers().range }),
  );
  await page.addInitScript(() => {
    const log: string[] = [];
    (window as unknown as { messages: string[] }).messages = log;
    document.addEventListener('DOMContentLoaded', () => {
      const line = document.getElementById('message')!;
      new MutationObserver(() => log.push(line.textContent ?? '')).observe(line, {
        childList: true,
        characterData: true,
        subtree: true,
      });
    });
  });
  if (intercept) await page.route(intercept.url, intercept.handle);
  try {
    await page.goto(served.url);
    await waitForState(page, ['idle']);
    await page.click('#examples button[data-example="scene-2.png"]');
    await page.waitForFunction(() => document.body.dataset.image === 'scene-2.png');
    await page.fill('#vocabulary', PROMPTS.vocabulary.join(', '));
    await page.fill('#sentences', PROMPTS.sentences.join('\n'));
    await page.fill('#score', '0');
    await page.dispatchEvent('#score', 'input');
    await page.fill('#semantic-threshold', '0');
    await page.dispatchEvent('#semantic-threshold', 'input');
    await page.click('label:has(input[value="browser"])');
    await page.waitForFunction(
      () => /in this browser/.test(document.getElementById('model-status')?.textContent ?? ''),
      null,
      { timeout: 120_000 },
    );
    await page.click('#run');
    assert.equal(await waitForState(page, ['done', 'error'], 180_000), 'done', (await page.textContent('#message'))!);
    return {
      json: await downloadedJson(page),
      timing: (await page.textContent('#timing'))!,
      warnings: (await page.isVisible('#warnings')) ? await page.textContent('#warnings') : null,
      messages: await page.evaluate(() => (window as unknown as { messages: string[] }).messages),
      responses,
      errors,
    };
  } finally {
    await page.close();
  }
}

const weightResponses = (run: PageRun) => run.responses.filter((r) => r.path === '/v1/model/files/model.safetensors');

test("the page loads the model's prompt side (text tower, last classifier) by ranges and runs the server's export: the server's instances", async () => {
  const run = await runInPage();
  assertSameResults(run.json, serverJson, "the page on the server's export vs the server (TF.js)");
  assert.match(run.timing, /^in this browser \(onnxruntime-web 1\.30\.0, wasm, \d threads?\): download \d+ ms, /);
  assert.equal(run.warnings, null);
  const key = exportKey(shape);
  assert.deepEqual(
    run.responses.filter((r) => r.path.startsWith('/v1/onnx')).map((r) => `${r.status} ${r.path}`),
    ['200 /v1/onnx', '200 /v1/onnx/export', `200 /v1/onnx/${key}/segment-0.onnx`, `200 /v1/onnx/${key}/segment-1.onnx`],
  );
  // Only ranges of the weights, fewer bytes than the file: the header, then runs of the prompt side's tensors.
  const ranges = weightResponses(run);
  assert.ok(ranges.length >= 3 && ranges.every((r) => r.status === 206), JSON.stringify(ranges));
  const bytes = ranges.reduce((a, r) => {
    const [, start, end] = /^bytes=(\d+)-(\d+)$/.exec(r.range ?? '')!;
    return a + Number(end) - Number(start) + 1;
  }, 0);
  assert.ok(bytes < weightsBytes, `${bytes} of ${weightsBytes} bytes of weights`);
  const loaded = run.messages.find((m) => m.startsWith('model loaded in'));
  assert.match(
    loaded ?? run.messages.join('\n'),
    /^model loaded in \d+ ms \(its prompt side: [\d.]+ of [\d.]+ MB of weights; the network runs the server's ONNX graphs\)$/,
  );
  // Downloads show their progress.
  for (const file of ['model.safetensors', 'segment-0.onnx', 'segment-1.onnx'])
    assert.ok(
      run.messages.some((m) => new RegExp(`^downloading ${file.replace('.', '\\.')}: [\\d.]+ of [\\d.]+ MB$`).test(m)),
      `${file}: ${run.messages.join(' | ')}`,
    );
  assert.deepEqual(run.errors, []);
});

test('a manifest that names other weights is refused with a note saying why, and the page makes the graphs itself', async () => {
  const other = 'f'.repeat(64);
  const run = await runInPage({
    url: /\/v1\/onnx\/export\?/,
    handle: async (route) => {
      const response = await route.fetch();
      const manifest = await response.json();
      await route.fulfill({ response, json: { ...manifest, model: { ...manifest.model, hash: other } } });
    },
  });
  assert.equal(
    run.warnings,
    `the server's ONNX export for ${exportKey(shape)} was made from other weights (model hash ${other.slice(0, 12)}; this page's model is ${hash.slice(0, 12)}); the graphs were made in this page instead`,
  );
  assert.match(run.timing, /: export \d+ ms, sessions \d+ ms, network \d+ ms, inference \d+ ms$/);
  assert.ok(!run.responses.some((r) => r.path.includes('/segment-')), 'no segment of the refused export is downloaded');
  // Making graphs takes the whole model: the weights in full, after the prompt side's ranges.
  assert.ok(weightResponses(run).some((r) => r.status === 200 && !r.range));
  assertSameResults(run.json, serverJson, "the page's own graphs after the refusal vs the server");
  assert.deepEqual(run.errors, []);
});

test("a segment whose weights are in an external data file (.onnx.data) loads in the page with onnxruntime-web's externalData", async () => {
  // In the server's cache as Node would keep APE-D's, forced to external data with the exporter's option.
  const tfjs = await loadModel(model.dir, { engine: 'tfjs', promptCache: false });
  try {
    const exported = exportNetwork(tfjs, shape, hash, { externalData: 'always' });
    assert.ok(exported.manifest.segments[0]!.data && exported.manifest.segments[1]!.data);
    await writeNetworkExport(join(model.dir, 'onnx', exportKey(shape)), exported);
  } finally {
    tfjs.dispose();
  }
  const run = await runInPage();
  const key = exportKey(shape);
  assert.deepEqual(
    run.responses.filter((r) => r.path.startsWith(`/v1/onnx/${key}/`)).map((r) => `${r.status} ${r.path}`),
    [
      `200 /v1/onnx/${key}/segment-0.onnx`,
      `200 /v1/onnx/${key}/segment-0.onnx.data`,
      `200 /v1/onnx/${key}/segment-1.onnx`,
      `200 /v1/onnx/${key}/segment-1.onnx.data`,
    ],
  );
  assert.equal(run.warnings, null, 'the external data was taken, not refused');
  assert.match(run.timing, /: download \d+ ms, /);
  assertSameResults(run.json, serverJson, "the page on the server's external-data export vs the server");
  assert.deepEqual(run.errors, []);
});

test('a static page (no /v1/onnx): the whole model is loaded and the page makes its graphs, with no note', async () => {
  const run = await runInPage({
    url: /\/v1\/onnx$/,
    handle: (route) => route.fulfill({ status: 404, json: { error: { status: 404, code: 'not-found' } } }),
  });
  assert.deepEqual(
    run.responses.filter((r) => r.path.startsWith('/v1/onnx/')),
    [],
    'no export is asked for',
  );
  const weights = weightResponses(run);
  assert.deepEqual(
    weights.map((r) => r.status),
    [200],
    'the weights in one piece',
  );
  assert.ok(
    run.messages.some((m) =>
      new RegExp(`model loaded in \\d+ ms \\(${(weightsBytes / 1e6).toFixed(1)} MB of weights\\)$`).test(m),
    ),
  );
  assert.match(run.timing, /: export \d+ ms, /);
  assert.equal(run.warnings, null);
  assertSameResults(run.json, serverJson, "the page's own graphs vs the server");
  // Chromium logs the 404 of /v1/onnx itself; the page reports nothing.
  assert.deepEqual(run.errors, ['Failed to load resource: the server responded with a status of 404 (Not Found)']);
});
