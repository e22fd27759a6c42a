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
import { chromium, type Browser, type Page } from 'playwright-core';
import type { PredictionJson } from '../../src/inference/prediction-json.js';
import { createApeServer, type ApeServer } from '../../src/server/app.js';

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

/** Builds the page into a temporary folder and serves it with `modelDir` on a free port. */
export async function servePage(modelDir: string): Promise<ServedPage> {
  const webDir = await mkdtemp(join(tmpdir(), 'ape-web-'));
  const build = spawnSync(process.execPath, ['scripts/build-web.mjs', webDir], { cwd: root, encoding: 'utf8' });
  assert.equal(build.status, 0, build.stderr);
  // The server's model on TF.js, as the page's TF.js mode runs it: the two are compared exactly.
  const app = await createApeServer({ modelDir, webDir, engine: 'tfjs' });
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
