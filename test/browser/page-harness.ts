/**
 * What the page's tests share: Debian's Chromium launched headless, the page built into a temporary
 * folder and served with a model by the project's server, and comparing two predictions.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page, type Route } from 'playwright-core';
import type { PredictionJson } from '../../src/inference/prediction-json.js';
import type { SafetensorsHeader } from '../../src/io/safetensors.js';
import { createApeServer, type ApeServer, type ApeServerOptions } from '../../src/server/app.js';

export const root = fileURLToPath(new URL('../..', import.meta.url));
const CHROMIUM = process.env.APE_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Headless Chromium without network extras. `webgpu`: WebGPU switched on (headless Chromium then
 * offers SwiftShader's adapter, WebGPU computed on the CPU); otherwise the GPU is off and
 * navigator.gpu gives no adapter.
 */
export function launchChromium(options: { webgpu?: boolean } = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      options.webgpu ? '--enable-unsafe-webgpu' : '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export interface ServedPage {
  app: ApeServer;
  url: string;
  webDir: string;
  close(): Promise<void>;
}

/** Builds the page into a temporary folder and serves it with `modelDir` on a free port (`options`: the server's, beside these). */
export async function servePage(
  modelDir: string,
  options: Omit<ApeServerOptions, 'modelDir' | 'webDir' | 'engine'> = {},
): Promise<ServedPage> {
  const webDir = await mkdtemp(join(tmpdir(), 'ape-web-'));
  const build = spawnSync(process.execPath, ['scripts/build-web.mjs', webDir], { cwd: root, encoding: 'utf8' });
  assert.equal(build.status, 0, build.stderr);
  // The server's model on TF.js, as the page's TF.js mode runs it: the two are compared exactly.
  const app = await createApeServer({ ...options, modelDir, webDir, engine: 'tfjs' });
  await app.host.start();
  const { url } = await app.listen(0);
  return {
    app,
    url,
    webDir,
    async close() {
      await app.close();
      await rm(webDir, { recursive: true, force: true });
    },
  };
}

/** The server's prediction (POST /v1/predict) on scene-2.png with `prompts`, threshold 0 and semantic threshold 0. */
export async function serverPrediction(
  url: string,
  prompts: { vocabulary: string[]; sentences: string[] },
): Promise<PredictionJson> {
  const scene = await readFile(join(root, 'examples', 'scene-2.png'));
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(scene)]), 'scene-2.png');
  form.append('vocabulary', prompts.vocabulary.join(','));
  form.append('sentences', prompts.sentences.join('\n'));
  form.append('threshold', '0');
  form.append('semanticThreshold', '0');
  const answer = await fetch(new URL('v1/predict', url), { method: 'POST', body: form });
  assert.equal(answer.status, 200, await answer.clone().text());
  return (await answer.json()) as PredictionJson;
}

/** Waits until the page's state is one of `names` and returns it. */
export async function waitForState(page: Page, names: string[], timeout = 60_000): Promise<string> {
  await page.waitForFunction((wanted) => wanted.includes(document.body.dataset.state ?? ''), names, { timeout });
  return (await page.evaluate(() => document.body.dataset.state))!;
}

/** The shown result as the page's Download JSON saves it. */
export async function downloadedJson(page: Page): Promise<PredictionJson> {
  const [json] = await Promise.all([page.waitForEvent('download'), page.click('#download-json')]);
  return JSON.parse(await readFile((await json.path())!, 'utf8')) as PredictionJson;
}

/**
 * Asserts that two predictions find the same instances and sentence matches: each of `a`'s
 * instances has one of `b`'s with the same prompt and kind, its box within 0.5 px and its score
 * within 1e-3 (matched by box, so near-equal scores may order differently).
 */
export function assertSameResults(a: PredictionJson, b: PredictionJson, what: string): void {
  assert.deepEqual(a.prompts, b.prompts, what);
  assert.ok(a.instances.length > 0, `${what}: no instances`);
  assert.equal(a.instances.length, b.instances.length, `${what}: instance count`);
  const left = [...b.instances];
  const boxGap = (p: number[], q: number[]) => Math.max(...p.map((v, i) => Math.abs(v - q[i]!)));
  for (const x of a.instances) {
    const same = left.filter((y) => y.category_id === x.category_id && y.kind === x.kind);
    assert.ok(same.length > 0, `${what}: no instance of '${x.prompt}' left to match ${JSON.stringify(x.bbox)}`);
    const y = same.reduce((best, y) => (boxGap(y.bbox, x.bbox) < boxGap(best.bbox, x.bbox) ? y : best));
    assert.ok(boxGap(x.bbox, y.bbox) <= 0.5, `${what}: '${x.prompt}' box ${x.bbox} vs ${y.bbox}`);
    assert.ok(Math.abs(x.score - y.score) <= 1e-3, `${what}: '${x.prompt}' score ${x.score} vs ${y.score}`);
    left.splice(left.indexOf(y), 1);
  }
  assert.equal(a.grounding.length, b.grounding.length, `${what}: grounding`);
  for (const [i, g] of a.grounding.entries()) {
    const h = b.grounding[i]!;
    assert.equal(g.sentence, h.sentence, what);
    assert.ok(boxGap(g.bbox, h.bbox) <= 0.5, `${what}: '${g.sentence}' box ${g.bbox} vs ${h.bbox}`);
    assert.ok(Math.abs(g.score - h.score) <= 1e-3, `${what}: '${g.sentence}' score ${g.score} vs ${h.score}`);
  }
}

/**
 * Bundles `entry` (a test module importing the page's code) into the served page's folder as
 * `test-NAME.js`, for a test to import in the page (`import('/test-NAME.js')`) and call.
 */
export async function buildTestBundle(webDir: string, entry: string): Promise<string> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [entry],
    outdir: webDir,
    entryNames: 'test-[name]',
    chunkNames: 'test-chunk-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    // As scripts/build-web.mjs: onnxruntime-web loads its runtime from env.wasm.wasmPaths.
    conditions: ['onnxruntime-web-use-extern-wasm'],
    logLevel: 'warning',
    metafile: true,
  });
  const out = Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint);
  assert.ok(out, `no bundle for ${entry}`);
  return `/${out[0].split('/').pop()}`;
}

export interface PageRun {
  json: PredictionJson;
  timing: string;
  /** The page's status line after the run (what ran it, where prompts were encoded). */
  status: string;
  warnings: string | null;
  /** Every text the message line showed (progress of downloads among them). */
  messages: string[];
  /** Every answer the page got: its path, method, status and the byte range asked for. */
  responses: { path: string; method: string; status: number; range: string | undefined }[];
  errors: string[];
}

export interface Intercept {
  url: string | RegExp;
  handle: (route: Route) => Promise<void>;
}

/**
 * Runs scene-2.png with `prompts` (threshold 0) in the page's in-browser mode (onnxruntime-web),
 * in a fresh page of `browser` at `url`; `intercepts` see the page's requests first.
 */
export async function runInBrowserMode(
  browser: Browser,
  url: string,
  prompts: { vocabulary: string[]; sentences: string[] },
  ...intercepts: Intercept[]
): Promise<PageRun> {
  const page: Page = await browser.newPage();
  const errors: string[] = [];
  const responses: PageRun['responses'] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  recordResponses(page, responses);
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
  for (const { url: pattern, handle } of intercepts) await page.route(pattern, handle);
  try {
    await page.goto(url);
    await waitForState(page, ['idle']);
    await page.click('#examples button[data-example="scene-2.png"]');
    await page.waitForFunction(() => document.body.dataset.image === 'scene-2.png');
    await page.fill('#vocabulary', prompts.vocabulary.join(', '));
    await page.fill('#sentences', prompts.sentences.join('\n'));
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
      status: (await page.textContent('#model-status'))!,
      warnings: (await page.isVisible('#warnings')) ? await page.textContent('#warnings') : null,
      messages: await page.evaluate(() => (window as unknown as { messages: string[] }).messages),
      responses,
      errors,
    };
  } finally {
    await page.close();
  }
}

export const weightResponses = (run: { responses: PageRun['responses'] }) =>
  run.responses.filter((r) => r.path === '/v1/model/files/model.safetensors');

/** The byte range a request asked for ([start, end], both included), or null for the whole file. */
export function askedRange(r: PageRun['responses'][number]): [number, number] | null {
  if (!r.range) return null;
  const [, start, end] = /^bytes=(\d+)-(\d+)$/.exec(r.range)!;
  return [Number(start), Number(end)];
}

/** The weights' tensors whose bytes any of `responses` asked for, and the bytes asked for in all. */
export function tensorsFetched(
  header: SafetensorsHeader,
  responses: PageRun['responses'],
): { names: Set<string>; bytes: number } {
  const names = new Set<string>();
  let bytes = 0;
  for (const r of responses) {
    const range = askedRange(r);
    assert.ok(range && r.status === 206, `a range of the weights, answered 206: ${JSON.stringify(r)}`);
    bytes += range[1] - range[0] + 1;
    for (const t of header.tensors)
      if (range[0] < header.dataStart + t.end && header.dataStart + t.begin <= range[1]) names.add(t.name);
  }
  return { names, bytes };
}

/** Appends every response the page gets to `responses` (path, method, status, Range header). */
export function recordResponses(page: Page, responses: PageRun['responses']): void {
  page.on('response', (r) =>
    responses.push({
      path: new URL(r.url()).pathname,
      method: r.request().method(),
      status: r.status(),
      range: r.request().headers().range,
    }),
  );
}
