import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { makeTestModelDir } from '../server/test-model.js';
import {
  assertSameResults,
  downloadedJson,
  launchChromium,
  servePage,
  type ServedPage,
  waitForState,
} from './page-harness.js';

/**
 * The in-browser mode's WebGPU path: Chromium with WebGPU switched on offers SwiftShader's adapter
 * even headless (WebGPU computed on the CPU: slow, but the same WebGPU API and the same
 * onnxruntime-web WebGPU provider a GPU would get), so the page picks WebGPU and must find what
 * the server finds.
 */

let model: { dir: string; remove: () => Promise<void> };
let served: ServedPage;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

before(async () => {
  model = await makeTestModelDir(21, ['circle', 'star', 'sky', 'sand', 'the', 'red', 'cross', 'to', 'right', 'of']);
  served = await servePage(model.dir);
  browser = await launchChromium({ webgpu: true });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
});

after(async () => {
  await browser?.close();
  await served?.close();
  await model?.remove();
});

test('in-browser mode with a WebGPU adapter runs onnxruntime-web on WebGPU and finds what the server finds', async () => {
  await page.goto(served.url);
  await waitForState(page, ['idle']);
  const adapter = await page.evaluate(async () => {
    const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
    return gpu ? (await gpu.requestAdapter()) != null : false;
  });
  assert.equal(adapter, true, 'headless Chromium with --enable-unsafe-webgpu offers an adapter (SwiftShader)');
  await page.click('#examples button[data-example="scene-2.png"]');
  await page.waitForFunction(() => document.body.dataset.image === 'scene-2.png');
  await page.fill('#vocabulary', 'circle, star, sky, sand');
  await page.fill('#sentences', 'the red cross to the right of the red star');
  await page.click('#run');
  assert.equal(await waitForState(page, ['done', 'error']), 'done', (await page.textContent('#message'))!);
  const serverJson = await downloadedJson(page);

  await page.click('label:has(input[value="browser"])');
  await page.waitForFunction(
    () => /in this browser/.test(document.getElementById('model-status')?.textContent ?? ''),
    null,
    { timeout: 60_000 },
  );
  assert.match(
    (await page.textContent('#model-status'))!,
    /\(onnxruntime-web 1\.30\.0, webgpu, \d threads?\) · prompts encoded in this browser$/,
  );
  await page.click('#run');
  assert.equal(await waitForState(page, ['done', 'error'], 300_000), 'done', (await page.textContent('#message'))!);
  // Still WebGPU after the sessions were made (a failure there would have fallen back to wasm).
  assert.match(
    (await page.textContent('#timing'))!,
    /^in this browser \(onnxruntime-web 1\.30\.0, webgpu, \d threads?\): /,
  );
  assertSameResults(await downloadedJson(page), serverJson, 'onnxruntime-web on WebGPU vs the server (TF.js)');
  assert.deepEqual(pageErrors, []);
});
