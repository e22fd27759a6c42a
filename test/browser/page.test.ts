import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { initEngine } from '../../src/engine/engine.js';
import { DEFAULT_SEMANTIC_THRESHOLD } from '../../src/inference/semantic-confidence.js';
import { loadModel } from '../../src/inference/model-files.js';
import { predictionToJson, type PredictionJson } from '../../src/inference/prediction-json.js';
import { decodeImage } from '../../src/io/image-node.js';
import { makeTestModelDir } from '../server/test-model.js';
import {
  assertSameResults,
  downloadedJson,
  launchChromium,
  root,
  servePage,
  type ServedPage,
  waitForState as waitForStateOf,
} from './page-harness.js';

/**
 * The web page in real headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
 * pick an example, type prompts, run on the server, check what is drawn and listed, then switch
 * to running the model inside the page (onnxruntime-web, then TF.js) and compare.
 */

let model: { dir: string; remove: () => Promise<void> };
let served: ServedPage;
let url: string;
let webDir: string;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];
/** The page's web workers (onnxruntime-web's wasm threads are workers running its .mjs runtime). */
const workers: string[] = [];
const isOrtThread = (u: string) => u.endsWith('/v1/ort/ort-wasm-simd-threaded.mjs');
/** What the page fetched: URL, status and the byte range asked for. */
const responses: { url: string; status: number; range: string | undefined }[] = [];

before(async () => {
  // A word list, so that the page has something to warn about.
  model = await makeTestModelDir(21, ['circle', 'star', 'sky', 'sand', 'the', 'red', 'cross', 'to', 'right', 'of']);
  served = await servePage(model.dir);
  ({ url, webDir } = served);
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
  page.on('worker', (w) => workers.push(w.url()));
  page.on('response', (r) => responses.push({ url: r.url(), status: r.status(), range: r.request().headers().range }));
});

after(async () => {
  await browser?.close();
  await served?.close();
  await model?.remove();
});

const waitForState = (names: string[], timeout?: number) => waitForStateOf(page, names, timeout);

/**
 * Keeps a copy of the canvas pixels in the page under `name` (reading millions of values out
 * through the protocol would be slow) and returns its size.
 */
function snapshot(name: string): Promise<{ width: number; height: number }> {
  return page.evaluate((key) => {
    const c = document.getElementById('canvas') as HTMLCanvasElement;
    const w = window as unknown as { snapshots?: Record<string, Uint8ClampedArray> };
    w.snapshots ??= {};
    const store = w.snapshots;
    store[key] = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    return { width: c.width, height: c.height };
  }, name);
}

/** Channel values that differ between two snapshots (-1 when their sizes differ). */
function differences(a: string, b: string): Promise<number> {
  return page.evaluate(
    ([x, y]) => {
      const store = (window as unknown as { snapshots: Record<string, Uint8ClampedArray> }).snapshots;
      const p = store[x!]!;
      const q = store[y!]!;
      if (p.length !== q.length) return -1;
      let n = 0;
      for (let i = 0; i < p.length; i++) if (p[i] !== q[i]) n++;
      return n;
    },
    [a, b],
  );
}

async function setChecked(id: string, on: boolean): Promise<void> {
  await page.setChecked(`#${id}`, on);
}

async function tableRows(): Promise<string[][]> {
  return page.$$eval('#results tbody tr', (rows) =>
    rows.map((r) => Array.from(r.querySelectorAll('td')).map((td) => td.textContent ?? '')),
  );
}

let serverRows: string[][] = [];
/** The server's answer to the first test's request (the page's Download JSON). */
let serverJson: PredictionJson;
const PROMPTS = {
  vocabulary: ['circle', 'star', 'sky', 'sand'],
  sentences: ['the red cross to the right of the red star'],
};

test('server mode: an example image, typed prompts, overlays drawn and a result table', async () => {
  await page.goto(url);
  await waitForState(['idle']);
  // Served by the project's server, the page is cross-origin isolated: SharedArrayBuffer, wasm threads.
  assert.equal(await page.evaluate(() => crossOriginIsolated), true);
  assert.equal(await page.isDisabled('#browser-engine'), true, 'the engine choice is for the in-browser mode');
  assert.match((await page.textContent('#model-status'))!, /model test-tiny · server \(wasm\)/);
  await page.click('#examples button[data-example="scene-2.png"]');
  await page.waitForFunction(() => document.body.dataset.image === 'scene-2.png');
  const size = await snapshot('before');
  assert.ok(
    size.width >= 256 && size.width % 256 === 0,
    `the 256-pixel image is shown enlarged by a whole factor (${size.width})`,
  );

  // One default everywhere: score 0.3 (as the CLI and the API), semantic threshold 0.1.
  assert.equal(await page.inputValue('#score'), '0.3');
  assert.equal(await page.textContent('#score-value'), '0.30');
  assert.equal(await page.inputValue('#semantic-threshold'), String(DEFAULT_SEMANTIC_THRESHOLD));
  assert.equal(await page.isVisible('#warnings'), false);
  await page.fill('#vocabulary', PROMPTS.vocabulary.join(', '));
  await page.fill('#sentences', PROMPTS.sentences.join('\n'));
  await page.fill('#score', '0');
  await page.dispatchEvent('#score', 'input');
  // The random model's scores are meaningless: label every pixel (APE's map) to see the map drawn.
  await page.fill('#semantic-threshold', '0');
  await page.dispatchEvent('#semantic-threshold', 'input');
  assert.equal(await page.textContent('#semantic-threshold-value'), '0.00');
  await page.click('#run');
  assert.equal(await waitForState(['done', 'error']), 'done', (await page.textContent('#message'))!);

  serverRows = await tableRows();
  assert.ok(serverRows.length > 0, 'result rows');
  for (const row of serverRows) {
    assert.ok(
      ['circle', 'star', 'sky', 'sand', 'the red cross to the right of the red star'].includes(row[1]!),
      `prompt ${row[1]}`,
    );
    assert.match(row[3]!, /^0\.\d{3}$/);
  }
  assert.match((await page.textContent('#count'))!, new RegExp(`^${serverRows.length} of ${serverRows.length}$`));
  assert.equal(await page.$$eval('#grounding li', (li) => li.length), 1);
  assert.ok((await page.$$eval('#legend li', (li) => li.length)) >= 1);
  assert.match((await page.textContent('#timing'))!, /server: .*inference \d+ ms/);
  serverJson = await downloadedJson(page);
  assert.equal(serverJson.instances.length, serverRows.length);

  await snapshot('drawn');
  for (const id of ['show-masks', 'show-boxes', 'show-labels']) await setChecked(id, false);
  await snapshot('plain');
  assert.equal(await differences('plain', 'before'), 0, 'with every overlay off the canvas is the plain image');
  const changed = await differences('drawn', 'plain');
  assert.ok(changed > 5000, `overlays changed only ${changed} channel values`);

  await setChecked('show-semantic', true);
  await snapshot('semantic');
  assert.ok((await differences('semantic', 'plain')) > 5000, 'the semantic map tints the image');
  await setChecked('show-semantic', false);
  for (const id of ['show-masks', 'show-boxes', 'show-labels']) await setChecked(id, true);

  // The slider filters rows without asking the model again.
  await page.fill('#score', '1');
  await page.dispatchEvent('#score', 'input');
  assert.equal((await tableRows()).length, 0);
  await page.fill('#score', '0');
  await page.dispatchEvent('#score', 'input');
  assert.equal((await tableRows()).length, serverRows.length);

  const shot = join(webDir, 'page.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok((await stat(shot)).size > 20_000);
});

test("in-browser mode on onnxruntime-web: the server's exports of the graphs and the text tower, run in the page beside the model's classifier, find what the server and Node find", async () => {
  await page.click('label:has(input[value="browser"])');
  await page.waitForFunction(
    () => /in this browser/.test(document.getElementById('model-status')?.textContent ?? ''),
    null,
    { timeout: 60_000 },
  );
  assert.equal(await page.inputValue('#browser-engine'), 'ort', 'ONNX Runtime is the in-browser default');
  // Headless Chromium (--disable-gpu) offers no WebGPU adapter, so this is the wasm fallback, with
  // threads because the page is cross-origin isolated.
  const webgpu = await page.evaluate(async () => {
    const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
    return gpu ? (await gpu.requestAdapter()) != null : false;
  });
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  const threads = Math.min(4, cores);
  const status = (await page.textContent('#model-status'))!;
  assert.equal(
    status,
    `model test-tiny · in this browser (onnxruntime-web 1.30.0, ${webgpu ? 'webgpu' : 'wasm'}, ${threads} thread${threads === 1 ? '' : 's'}) · prompts encoded in this browser`,
  );
  // The page holds the model's classifier only: its weights were read by ranges, never whole.
  const weights = responses.filter((r) => r.url.endsWith('/v1/model/files/model.safetensors'));
  assert.ok(weights.length > 0 && weights.every((r) => r.status === 206 && r.range), JSON.stringify(weights));
  await page.click('#run');
  assert.equal(await waitForState(['done', 'error'], 120_000), 'done', (await page.textContent('#message'))!);
  // The first run of this geometry fetches the server's export of it (made by the server on this
  // request, cached next to the model) and makes its sessions.
  assert.match(
    (await page.textContent('#timing'))!,
    /^in this browser \(onnxruntime-web 1\.30\.0, (wasm|webgpu), \d threads?\): download \d+ ms, sessions \d+ ms, network \d+ ms, inference \d+ ms$/,
  );
  const fetched = responses
    .filter((r) => r.url.includes('/v1/onnx/'))
    .map((r) => `${r.status} ${new URL(r.url).pathname}`);
  // The text tower's export came at load (its manifest, 12 bucket graphs and their weights file).
  const text = fetched.filter((f) => f.includes('/v1/onnx/text'));
  assert.equal(text[0], '200 /v1/onnx/text');
  assert.equal(text.length, 14);
  assert.ok(text.every((f) => f.startsWith('200 ')));
  assert.deepEqual(
    fetched.filter((f) => !text.includes(f)),
    ['200 /v1/onnx/export', '200 /v1/onnx/128-v0-s1/segment-0.onnx', '200 /v1/onnx/128-v0-s1/segment-1.onnx'],
  );
  assert.equal(await page.isVisible('#warnings'), false, 'no note: the server export was used');
  const ortJson = await downloadedJson(page);
  if (threads > 1) assert.ok(workers.some(isOrtThread), `onnxruntime-web's thread workers: ${workers.join(', ')}`);
  assertSameResults(ortJson, serverJson, 'onnxruntime-web vs the server (TF.js)');

  // Node's ONNX Runtime path on the same pixels and prompts (its own export, cached in the model folder).
  await initEngine();
  const nodeModel = await loadModel(model.dir, { engine: 'ort' });
  try {
    const image = await decodeImage(await readFile(join(root, 'examples', 'scene-2.png')));
    const prediction = await nodeModel.predict(image, { ...PROMPTS, threshold: 0, semanticThreshold: 0 });
    assertSameResults(ortJson, predictionToJson(prediction), 'onnxruntime-web vs onnxruntime-node');
  } finally {
    nodeModel.dispose();
  }

  // Again: the export is kept, so no export time.
  await page.click('#run');
  assert.equal(await waitForState(['done', 'error'], 120_000), 'done', (await page.textContent('#message'))!);
  assert.match((await page.textContent('#timing'))!, /\): network \d+ ms, inference \d+ ms$/);
  assertSameResults(await downloadedJson(page), ortJson, 'a second run');
  assert.deepEqual(pageErrors, []);
});

test('in-browser mode on TF.js: the same model runs inside the page and finds the same objects', async () => {
  await page.selectOption('#browser-engine', 'tfjs');
  await page.waitForFunction(() =>
    /\(TF\.js wasm\) · prompts encoded in this browser$/.test(
      document.getElementById('model-status')?.textContent ?? '',
    ),
  );
  await waitForState(['idle']);
  await page.click('#run');
  assert.equal(await waitForState(['done', 'error']), 'done', (await page.textContent('#message'))!);
  assert.match(
    (await page.textContent('#timing'))!,
    /^in this browser \(TF\.js wasm\): network \d+ ms, inference \d+ ms$/,
  );
  const rows = await tableRows();
  assert.equal(rows.length, serverRows.length);
  // Same weights, same pixels, the same wasm kernels: the same rows, scores and boxes.
  assert.deepEqual(rows, serverRows);
  assert.deepEqual(pageErrors, []);
});

test('a prompt word the model does not know gets a visible note, in both modes', async () => {
  await page.fill('#vocabulary', 'circle, cat');
  for (const mode of ['browser', 'server']) {
    await page.click(`label:has(input[value="${mode}"])`);
    await page.click('#run');
    assert.equal(await waitForState(['done', 'error']), 'done', (await page.textContent('#message'))!);
    assert.equal(await page.isVisible('#warnings'), true, mode);
    assert.match(
      (await page.textContent('#warnings'))!,
      /^'cat' is not in this model's vocabulary, so prompts with it get meaningless scores; this model knows 10 words: circle, cross, of, red, right, sand, sky, star, the, to$/,
    );
  }
  await page.fill('#vocabulary', 'circle, star');
  await page.click('#run');
  assert.equal(await waitForState(['done', 'error']), 'done');
  assert.equal(await page.isVisible('#warnings'), false);
  assert.deepEqual(pageErrors, []);
});

test('every sentence is drawn with its score even under the slider (marked), rows highlight their object, JSON and PNG download', async () => {
  await page.fill('#vocabulary', 'circle, star, sky, sand');
  await page.fill('#sentences', 'the red cross to the right of the red star');
  await page.click('#run');
  assert.equal(await waitForState(['done', 'error']), 'done');
  // Above every score: no instance is drawn, the sentence's match still is, marked as below.
  await page.fill('#score', '1');
  await page.dispatchEvent('#score', 'input');
  assert.equal((await tableRows()).length, 0);
  assert.match(
    (await page.textContent('#grounding li.below'))!,
    /the red cross to the right of the red star\s*0\.\d{3} \(below 1\.00\)/,
  );
  await snapshot('grounding-on');
  for (const id of ['show-boxes', 'show-labels']) await setChecked(id, false);
  await snapshot('grounding-off');
  assert.ok(
    (await differences('grounding-on', 'grounding-off')) > 200,
    'the match under the threshold is drawn (box and label)',
  );
  for (const id of ['show-boxes', 'show-labels']) await setChecked(id, true);

  // Hovering a row draws its object highlighted; leaving restores the picture.
  await page.fill('#score', '0');
  await page.dispatchEvent('#score', 'input');
  await snapshot('rest');
  await page.hover('#results tbody tr:first-child');
  assert.equal(await page.$$eval('#results tbody tr.hovered', (r) => r.length), 1);
  await snapshot('hover');
  assert.ok((await differences('hover', 'rest')) > 100, 'the hovered object is highlighted');
  await page.hover('#run');
  await snapshot('left');
  assert.equal(await differences('left', 'rest'), 0);

  const [json] = await Promise.all([page.waitForEvent('download'), page.click('#download-json')]);
  assert.equal(json.suggestedFilename(), 'scene-2.ape.json');
  const saved = JSON.parse(await readFile((await json.path())!, 'utf8'));
  assert.equal(saved.instances.length, serverRows.length);
  assert.deepEqual(
    saved.prompts.map((p: { text: string }) => p.text),
    ['circle', 'star', 'sky', 'sand', 'the red cross to the right of the red star'],
  );
  const [png] = await Promise.all([page.waitForEvent('download'), page.click('#download-png')]);
  assert.equal(png.suggestedFilename(), 'scene-2.ape.png');
  const bytes = await readFile((await png.path())!);
  assert.deepEqual([...bytes.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  assert.deepEqual(pageErrors, []);
});

test('not cross-origin isolated (the isolation headers stripped on the way): onnxruntime-web runs one wasm thread and finds the same', async () => {
  const plain = await browser.newPage();
  const errors: string[] = [];
  const plainWorkers: string[] = [];
  plain.on('pageerror', (error) => errors.push(error.message));
  plain.on('worker', (w) => plainWorkers.push(w.url()));
  await plain.route('**/*', async (route) => {
    const response = await route.fetch();
    const headers = { ...response.headers() };
    delete headers['cross-origin-opener-policy'];
    delete headers['cross-origin-embedder-policy'];
    await route.fulfill({ response, headers });
  });
  try {
    await plain.goto(url);
    await waitForStateOf(plain, ['idle']);
    assert.equal(await plain.evaluate(() => crossOriginIsolated), false);
    await plain.click('#examples button[data-example="scene-2.png"]');
    await plain.waitForFunction(() => document.body.dataset.image === 'scene-2.png');
    await plain.fill('#vocabulary', PROMPTS.vocabulary.join(', '));
    await plain.fill('#sentences', PROMPTS.sentences.join('\n'));
    await plain.click('label:has(input[value="browser"])');
    await plain.waitForFunction(
      () => /in this browser/.test(document.getElementById('model-status')?.textContent ?? ''),
      null,
      { timeout: 60_000 },
    );
    assert.match(
      (await plain.textContent('#model-status'))!,
      /\(onnxruntime-web 1\.30\.0, wasm, 1 thread\) · prompts encoded in this browser$/,
    );
    await plain.click('#run');
    assert.equal(
      await waitForStateOf(plain, ['done', 'error'], 120_000),
      'done',
      (await plain.textContent('#message'))!,
    );
    assert.match(
      (await plain.textContent('#timing'))!,
      /^in this browser \(onnxruntime-web 1\.30\.0, wasm, 1 thread\): /,
    );
    assertSameResults(await downloadedJson(plain), serverJson, 'onnxruntime-web, one thread, vs the server');
    assert.deepEqual(plainWorkers.filter(isOrtThread), [], 'no thread workers without isolation');
    assert.deepEqual(errors, []);
  } finally {
    await plain.close();
  }
});
