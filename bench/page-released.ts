/**
 * `npm run bench -- page-released [--dir DIR] [--size 512] [--timeout-min 40] [--keep]`: the web
 * page's in-browser mode with APE-Ti's real shapes (its EVA02-CLIP-E text tower included: 2.78 GB
 * of the 3.09 GB of random weights, bench/export-memory.ts makes the folder) in Debian's headless
 * Chromium, once. `ape serve` (ort engine) serves it; the text tower is larger than the page limit
 * it states, so the page asks it for its prompts' vectors (POST /v1/prompts) and runs the
 * detector's ONNX export on onnxruntime-web. Before the page opens, the server makes the network's
 * export of the input size and the text export (a warm-up prompt): their times are reported, and
 * the page's own prompts are still new to the server. Reported: the time from the click on "In
 * this browser" to the first result shown, what the page downloaded (by kind), requests for the
 * text tower's weights or export (there should be none), the peak memory of Chromium's processes
 * and of the server's, and whether it completed (else the exact failure the page or Chromium gave).
 * The config's input size is set to --size (default 512; the model's own is 1024). Several GB of
 * memory and minutes of both cores: not a unit test.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { option } from './options.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Resident memory (MB) of the descendants of `pid` (not `pid` itself: the bench measures Chromium beside its own RSS), from /proc. */
function treeRssMb(pid: number): number {
  const parents = new Map<number, number>();
  const rss = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parents.set(Number(name), Number(fields[1]));
      rss.set(Number(name), (Number(fields[21]) * 4096) / 1e6);
    } catch {
      // A process that ended while the list was read.
    }
  }
  const inTree = (p: number): boolean => {
    for (let at = p, hops = 0; at > 1 && hops < 64; at = parents.get(at) ?? 0, hops++) if (at === pid) return true;
    return false;
  };
  let total = 0;
  for (const [p, mb] of rss) if (p !== pid && inTree(p)) total += mb;
  return total;
}

/** Which part of the page's downloads a path is. */
function downloadKind(path: string): string {
  if (path.startsWith('/v1/model/files/model.safetensors')) return 'weights';
  if (path.startsWith('/v1/onnx/text') || /^\/v1\/onnx\/text-/.test(path)) return 'text export';
  if (path.startsWith('/v1/onnx')) return 'network export';
  if (path.startsWith('/v1/ort/') || path.startsWith('/v1/wasm/')) return 'runtimes';
  if (path === '/v1/prompts') return 'prompt vectors';
  return 'page and the rest';
}

export async function run(argv: string[]): Promise<{ results: Record<string, unknown> }> {
  const dir = option(argv, '--dir', join(tmpdir(), 'ape-ti-real-text'));
  const size = Number(option(argv, '--size', '512'));
  const timeoutMs = Number(option(argv, '--timeout-min', '40')) * 60_000;
  if (!Number.isInteger(size) || size % 64 !== 0) throw new Error(`--size: ${size} is not a multiple of 64`);
  if (!existsSync(join(dir, 'model.safetensors'))) {
    // In a child process: building the shapes takes 3.09 GB of a wasm heap, which never shrinks.
    const made = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `import { makeModelFolder } from './bench/export-memory.ts'; await makeModelFolder(${JSON.stringify(dir)});`,
      ],
      { cwd: root, stdio: 'inherit' },
    );
    if (made.status !== 0) throw new Error(`the model folder was not made (exit ${made.status})`);
  }
  // The page predicts at the config's input size.
  const configPath = join(dir, 'config.json');
  const file = JSON.parse(readFileSync(configPath, 'utf8'));
  file.config.input.size = size;
  writeFileSync(configPath, `${JSON.stringify(file, null, 2)}\n`);

  const webDir = await mkdtemp(join(tmpdir(), 'ape-web-'));
  const built = spawnSync(process.execPath, ['scripts/build-web.mjs', webDir], { cwd: root, encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`the page did not build: ${built.stderr}`);
  const { createApeServer } = await import('../src/server/app.js');
  const { chromium } = await import('playwright-core');
  const serverLog: string[] = [];
  const t0 = performance.now();
  const app = await createApeServer({
    modelDir: dir,
    webDir,
    engine: 'ort',
    log: (line) => serverLog.push(line),
    limits: { requestTimeoutMs: timeoutMs },
  });
  await app.host.start();
  const { url } = await app.listen(0);
  const serverLoadS = (performance.now() - t0) / 1000;
  const model = (await (await fetch(new URL('v1/model', url))).json()) as { promptEncoding: unknown };
  console.log(`server loaded in ${serverLoadS.toFixed(1)} s; prompt encoding: ${JSON.stringify(model.promptEncoding)}`);

  // The exports the page needs, made now (the page's time is then its own, not the server's first export).
  const t1 = performance.now();
  const exportAnswer = await fetch(new URL(`v1/onnx/export?size=${size}&sentences=1`, url));
  const networkExportS = (performance.now() - t1) / 1000;
  const t2 = performance.now();
  const warm = await fetch(new URL('v1/prompts', url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ texts: ['a warm-up prompt'] }),
  });
  const firstPromptS = (performance.now() - t2) / 1000;
  console.log(
    `network export ${exportAnswer.status} in ${networkExportS.toFixed(1)} s; first prompt (the text export made) ${warm.status} in ${firstPromptS.toFixed(1)} s`,
  );

  const browser = await chromium.launch({
    executablePath: process.env.APE_CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  const page = await browser.newPage();
  const downloads = new Map<string, number>();
  const requests: string[] = [];
  const failures: string[] = [];
  page.on('requestfinished', async (request) => {
    const path = new URL(request.url()).pathname;
    requests.push(`${request.method()} ${path}`);
    const { responseBodySize } = await request.sizes().catch(() => ({ responseBodySize: 0 }));
    const kind = downloadKind(path);
    downloads.set(kind, (downloads.get(kind) ?? 0) + responseBodySize);
  });
  page.on('pageerror', (error) => failures.push(`page error: ${error.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') failures.push(`console: ${m.text()}`);
  });
  page.on('crash', () => failures.push('the page crashed (Chromium killed its renderer)'));
  let peakChromiumMb = 0;
  let peakServerMb = 0;
  const sampler = setInterval(() => {
    peakChromiumMb = Math.max(peakChromiumMb, treeRssMb(process.pid));
    peakServerMb = Math.max(peakServerMb, process.memoryUsage().rss / 1e6);
  }, 1000);
  const result: Record<string, unknown> = {};
  try {
    await page.goto(url);
    await page.waitForFunction(() => document.body.dataset.state === 'idle', null, { timeout: 60_000 });
    await page.click('#examples button[data-example="scene-2.png"]');
    await page.waitForFunction(() => document.body.dataset.image === 'scene-2.png');
    const start = performance.now();
    await page.click('label:has(input[value="browser"])');
    await page.waitForFunction(
      () => /in this browser/.test(document.getElementById('model-status')?.textContent ?? ''),
      null,
      { timeout: timeoutMs },
    );
    const loadedS = (performance.now() - start) / 1000;
    const loadedMessage = await page.textContent('#message');
    await page.click('#run');
    const state = await page
      .waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), null, {
        timeout: timeoutMs,
      })
      .then(() => page.evaluate(() => document.body.dataset.state))
      .catch((e: Error) => `timeout or crash: ${e.message.split('\n')[0]}`);
    const firstResultS = (performance.now() - start) / 1000;
    Object.assign(result, {
      completed: state === 'done',
      state,
      loadedS,
      firstResultS,
      loadedMessage,
      message: await page.textContent('#message').catch(() => null),
      status: await page.textContent('#model-status').catch(() => null),
      timing: await page.textContent('#timing').catch(() => null),
      warnings: await page.textContent('#warnings').catch(() => null),
    });
  } finally {
    clearInterval(sampler);
    await browser.close().catch(() => undefined);
    await app.close();
    rmSync(webDir, { recursive: true, force: true });
    if (!argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  }
  const mb = Object.fromEntries([...downloads].map(([k, v]) => [k, Math.round(v / 1e4) / 100]));
  const towerRequests = requests.filter((r) => /\/v1\/onnx\/text/.test(r));
  Object.assign(result, {
    model: `ape-ti, real text tower shapes (random weights), input ${size}`,
    promptEncoding: model.promptEncoding,
    serverLoadS,
    networkExportS,
    firstPromptS,
    downloadedMb: mb,
    promptRequests: requests.filter((r) => r === 'POST /v1/prompts').length,
    textTowerRequests: towerRequests,
    peakChromiumMb: Math.round(peakChromiumMb),
    peakBenchProcessMb: Math.round(peakServerMb),
    failures,
    serverLog: serverLog.slice(-20),
  });
  console.log(JSON.stringify(result, null, 2));
  return { results: result };
}
