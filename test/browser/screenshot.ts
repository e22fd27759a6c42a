/**
 * Takes the web page's picture for the docs: serves a model, opens the page in headless Chromium,
 * runs an example and saves a screenshot.
 *   node --import tsx test/browser/screenshot.ts [--model models/default] [--example scene-2.png]
 *        [--score 0.3] [--mode server|browser] [--out docs/web-page.png]
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createApeServer } from '../../src/server/app.js';
import { launchChromium } from './page-harness.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: join(root, 'models', 'default') },
    example: { type: 'string', default: 'scene-2.png' },
    score: { type: 'string', default: '0.3' },
    mode: { type: 'string', default: 'server' },
    vocabulary: { type: 'string' },
    sentences: { type: 'string' },
    out: { type: 'string', default: join(root, 'docs', 'web-page.png') },
  },
});

const webDir = await mkdtemp(join(tmpdir(), 'ape-web-'));
const build = spawnSync(process.execPath, ['scripts/build-web.mjs', webDir], { cwd: root, encoding: 'utf8' });
if (build.status !== 0) throw new Error(build.stderr);
const app = await createApeServer({ modelDir: values.model!, webDir });
await app.host.start();
const { url } = await app.listen(0);
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.state === 'idle');
  if (values.mode === 'browser') {
    await page.click('label:has(input[value="browser"])');
    await page.waitForFunction(() => document.body.dataset.state === 'idle', null, { timeout: 120_000 });
  }
  await page.click(`#examples button[data-example="${values.example}"]`);
  await page.waitForFunction((name) => document.body.dataset.image === name, values.example);
  if (values.vocabulary !== undefined) await page.fill('#vocabulary', values.vocabulary);
  if (values.sentences !== undefined) await page.fill('#sentences', values.sentences.replace(/\|/g, '\n'));
  await page.fill('#score', values.score!);
  await page.dispatchEvent('#score', 'input');
  await page.click('#run');
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), null, {
    timeout: 120_000,
  });
  console.log(await page.textContent('#message'));
  console.log(await page.textContent('#timing'));
  await page.screenshot({ path: values.out!, fullPage: true });
  console.log(`screenshot: ${values.out}`);
} finally {
  await browser.close();
  await app.close();
  await rm(webDir, { recursive: true, force: true });
}
