import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { DEFAULT_SEMANTIC_THRESHOLD } from '../../src/inference/semantic-confidence.js';
import { createApeServer, type ApeServer } from '../../src/server/app.js';
import { makeTestModelDir } from '../server/test-model.js';

/**
 * The web page in real headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
 * pick an example, type prompts, run on the server, check what is drawn and listed, then switch
 * to running the model inside the page and compare.
 */

const root = fileURLToPath(new URL('../..', import.meta.url));
const CHROMIUM = process.env.APE_CHROMIUM ?? '/usr/bin/chromium';

let model: { dir: string; remove: () => Promise<void> };
let webDir: string;
let app: ApeServer;
let url: string;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

before(async () => {
  // A word list, so that the page has something to warn about.
  model = await makeTestModelDir(21, ['circle', 'star', 'sky', 'sand', 'the', 'red', 'cross', 'to', 'right', 'of']);
  webDir = await mkdtemp(join(tmpdir(), 'ape-web-'));
  const build = spawnSync(process.execPath, ['scripts/build-web.mjs', webDir], { cwd: root, encoding: 'utf8' });
  assert.equal(build.status, 0, build.stderr);
  // The server's model on TF.js, as the page's in-browser mode runs it: the two are compared exactly.
  app = await createApeServer({ modelDir: model.dir, webDir, engine: 'tfjs' });
  await app.host.start();
  url = (await app.listen(0)).url;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
});

after(async () => {
  await browser?.close();
  await app?.close();
  await model?.remove();
  if (webDir) await rm(webDir, { recursive: true, force: true });
});

const state = () => page.evaluate(() => document.body.dataset.state);

async function waitForState(names: string[], timeout = 60_000): Promise<string> {
  await page.waitForFunction((wanted) => wanted.includes(document.body.dataset.state ?? ''), names, { timeout });
  return (await state())!;
}

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

test('server mode: an example image, typed prompts, overlays drawn and a result table', async () => {
  await page.goto(url);
  await waitForState(['idle']);
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
  await page.fill('#vocabulary', 'circle, star, sky, sand');
  await page.fill('#sentences', 'the red cross to the right of the red star');
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

test('in-browser mode: the same model runs inside the page and finds the same objects', async () => {
  await page.click('label:has(input[value="browser"])');
  await page.waitForFunction(
    () => /in this browser/.test(document.getElementById('model-status')?.textContent ?? ''),
    null,
    { timeout: 60_000 },
  );
  await page.click('#run');
  assert.equal(await waitForState(['done', 'error']), 'done', (await page.textContent('#message'))!);
  assert.match((await page.textContent('#timing'))!, /in this browser: inference \d+ ms/);
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
