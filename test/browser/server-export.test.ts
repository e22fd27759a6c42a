import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Route } from 'playwright-core';
import { initEngine, tf } from '../../src/engine/engine.js';
import { loadModel } from '../../src/inference/model-files.js';
import type { PredictionJson } from '../../src/inference/prediction-json.js';
import type { SafetensorsHeader } from '../../src/io/safetensors.js';
import { readSafetensorsHeaderFile } from '../../src/io/safetensors-node.js';
import { filesHash, writeNetworkExport } from '../../src/onnx/export-files.js';
import { exportKey, exportNetwork, type ExportShape } from '../../src/onnx/export-network.js';
import { chunkEdges, dataFingerprint } from '../../src/onnx/external-data.js';
import { textExportKey, textExportShape, type TextExportManifest } from '../../src/onnx/text-export.js';
import { relativeError } from '../onnx/relative-error.js';
import { makeTestModelDir } from '../server/test-model.js';
import {
  assertSameResults,
  buildTestBundle,
  type Intercept,
  launchChromium,
  askedRange,
  tensorsFetched,
  weightResponses,
  type PageRun,
  recordResponses,
  root,
  runInBrowserMode,
  serverPrediction,
  servePage,
  type ServedPage,
} from './page-harness.js';

/**
 * The page's in-browser mode with the server's ONNX exports (Debian's Chromium, headless): it
 * loads the model's last classifier only, encodes prompts with the text export the server caches
 * next to the model (never fetching the text tower's weights) and runs the network's export; it
 * refuses a tampered text export and loads the tower's weights instead, or, where onnxruntime-web
 * refuses a text graph, makes the text graphs from the whole model; it refuses an export whose
 * manifest names other weights and makes the graphs itself; it loads a segment whose weights are
 * in an external data file; without the server's exports (a static page) it loads the whole model
 * and makes its graphs. Weights always come tensor by tensor out of byte ranges, or, from a server
 * that ignores ranges, out of one read through the file, never as one array.
 */

let model: { dir: string; remove: () => Promise<void> };
let served: ServedPage;
let browser: Browser;
let serverJson: PredictionJson;
let hash: string;
let weightsBytes: number;
/** The weights file's header: where each tensor lies. */
let header: SafetensorsHeader;
/** The text export the server hands out (made by its first request, here in before). */
let textManifest: TextExportManifest;
let textKey: string;
/** The test bundle (fixtures/prompt-vectors.ts) in the served page. */
let vectorsBundle: string;
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
  header = await readSafetensorsHeaderFile(weights);
  textKey = textExportKey(textExportShape(16));
  textManifest = (await (await fetch(new URL('v1/onnx/text', served.url))).json()) as TextExportManifest;
  vectorsBundle = await buildTestBundle(served.webDir, join(root, 'test/browser/fixtures/prompt-vectors.ts'));
  serverJson = await serverPrediction(served.url, PROMPTS);
  await initEngine({ backend: 'wasm' });
  // One export serves every aspect ratio: the shape is the input size and the sentence bucket.
  shape = { size: 128, vocabulary: 0, sentences: 1 };
});

after(async () => {
  await browser?.close();
  await served?.close();
  await model?.remove();
});

/** Runs scene-2.png with PROMPTS in the page's in-browser mode (onnxruntime-web), in a fresh page; `intercepts` see the page's requests first. */
const runInPage = (...intercepts: Intercept[]) => runInBrowserMode(browser, served.url, PROMPTS, ...intercepts);

const tensorBytes = (which: (name: string) => boolean) =>
  header.tensors.filter((t) => which(t.name)).reduce((a, t) => a + t.end - t.begin, 0);
const isClassifier = (name: string) => name.startsWith('class_embed.0.');
const isTower = (name: string) => name.startsWith('model_language.');

/** The text export's files in the order the page fetches them (graphs, then the weights file). */
const textFilePaths = () => [
  '/v1/onnx/text',
  ...textManifest.graphs.map((g) => `/v1/onnx/${textKey}/${g.file}`),
  `/v1/onnx/${textKey}/text.onnx.data`,
];

test("the page loads the model's last classifier only (by ranges), encodes prompts with the server's text export and runs its network export: the server's instances", async () => {
  const run = await runInPage();
  assertSameResults(run.json, serverJson, "the page on the server's exports vs the server (TF.js)");
  assert.match(run.timing, /^in this browser \(onnxruntime-web 1\.30\.0, wasm, \d threads?\): download \d+ ms, /);
  assert.equal(run.warnings, null);
  const key = exportKey(shape);
  assert.deepEqual(
    run.responses.filter((r) => r.path.startsWith('/v1/onnx')).map((r) => `${r.status} ${r.path}`),
    [
      '200 /v1/onnx',
      ...textFilePaths().map((p) => `200 ${p}`),
      '200 /v1/onnx/export',
      `200 /v1/onnx/${key}/segment-0.onnx`,
      `200 /v1/onnx/${key}/segment-1.onnx`,
    ],
  );
  // Only ranges of the weights: the header, then the classifier's tensors; none of the text tower's.
  const fetched = tensorsFetched(header, weightResponses(run));
  assert.deepEqual([...fetched.names], header.tensors.map((t) => t.name).filter(isClassifier));
  assert.equal(fetched.bytes, 8 + header.dataStart + tensorBytes(isClassifier));
  const loaded = run.messages.find((m) => m.startsWith('model loaded in'));
  assert.match(
    loaded ?? run.messages.join('\n'),
    /^model loaded in \d+ ms \(its classifier: [\d.]+ of [\d.]+ MB of weights; the network and the text tower run the server's ONNX graphs\)$/,
  );
  // Downloads show their progress.
  for (const file of ['model.safetensors', 'text.onnx.data', 'segment-0.onnx', 'segment-1.onnx'])
    assert.ok(
      run.messages.some((m) =>
        new RegExp(`^downloading ${file.replaceAll('.', '\\.')}: [\\d.]+ of [\\d.]+ MB$`).test(m),
      ),
      `${file}: ${run.messages.join(' | ')}`,
    );
  assert.deepEqual(run.errors, []);
});

test("the page's prompt vectors from the server's text export equal Node's (ONNX Runtime and TF.js, within 1e-4 relative); the tower's weights are not fetched", async () => {
  const texts = [
    'circle',
    'star',
    'sky',
    'sand',
    'the red cross',
    'the red star to the right of the circle',
    'sky sand',
    'red',
    'cross',
    'the star',
  ];
  const page = await browser.newPage();
  const responses: PageRun['responses'] = [];
  recordResponses(page, responses);
  let inPage: { vectors: number[][]; weights: { parts: string }; notes: string | null };
  try {
    await page.goto(served.url);
    inPage = await page.evaluate(
      async ([bundle, texts]) => {
        const { promptVectors } = await import(bundle as string);
        return promptVectors(texts);
      },
      [vectorsBundle, texts] as const,
    );
  } finally {
    await page.close();
  }
  assert.equal(inPage.weights.parts, 'classifier');
  assert.equal(inPage.notes, null);
  const fetched = tensorsFetched(header, weightResponses({ responses }));
  assert.ok(![...fetched.names].some(isTower), [...fetched.names].join(', '));
  assert.equal(fetched.bytes, 8 + header.dataStart + tensorBytes(isClassifier));
  for (const path of textFilePaths())
    assert.ok(
      responses.some((r) => r.path === path && r.status === 200),
      path,
    );

  const got = Float32Array.from(inPage.vectors.flat());
  // Node's ort engine on the text export the server cached (same files), and the TF.js tower.
  const ort = await loadModel(model.dir, { engine: 'ort', promptCache: false });
  const tfjs = await loadModel(model.dir, { engine: 'tfjs', promptCache: false });
  try {
    const onOrt = await ort.encodePromptsOnEngine(texts);
    const onTfjs = tfjs.encodePrompts(texts);
    assert.equal(got.length, onOrt.size);
    const vsOrt = relativeError(got, onOrt.dataSync());
    const vsTfjs = relativeError(got, onTfjs.dataSync());
    assert.ok(vsOrt < 1e-4, `page vs Node's ONNX Runtime: ${vsOrt}`);
    assert.ok(vsTfjs < 1e-4, `page vs Node's TF.js: ${vsTfjs}`);
    tf.dispose([onOrt, onTfjs]);
  } finally {
    ort.dispose();
    tfjs.dispose();
  }
});

test("a text export whose weights file was altered on the way is refused, saying why: the page loads the tower's weights and matches", async () => {
  let tampered: Uint8Array | null = null;
  const run = await runInPage({
    url: `**/v1/onnx/${textKey}/text.onnx.data`,
    handle: async (route) => {
      const response = await route.fetch();
      const body = new Uint8Array(await response.body());
      body[0] = body[0]! ^ 0xff;
      tampered = body;
      await route.fulfill({ response, body: Buffer.from(body) });
    },
  });
  assert.ok(tampered);
  const bytes = tampered as Uint8Array;
  const { head, tail } = chunkEdges([bytes], bytes.length);
  const note = `the server's ONNX text export has a text.onnx.data that is not the one the export wrote (fingerprint ${dataFingerprint(head, tail, bytes.length)}, expected ${textManifest.data!.fingerprint}); the text tower's weights were loaded instead`;
  assert.equal(run.warnings, note);
  assert.match(
    run.messages.find((m) => m.startsWith('model loaded in')) ?? '',
    new RegExp(
      `its prompt side: [\\d.]+ of [\\d.]+ MB of weights; the network runs the server's ONNX graphs\\); ${note.replace(/[()]/g, '\\$&')}$`,
    ),
  );
  // The prompt side: the tower and the classifier, by ranges.
  const fetched = tensorsFetched(header, weightResponses(run));
  assert.equal(fetched.bytes, 8 + header.dataStart + tensorBytes((n) => isTower(n) || isClassifier(n)));
  assertSameResults(run.json, serverJson, "the page's own text graphs after the refusal vs the server");
  assert.deepEqual(run.errors, []);
});

test('a text graph that onnxruntime-web cannot open (right size, other bytes) is refused, saying why: the text graphs are made from the whole model, fetched by ranges', async () => {
  const first = textManifest.graphs[0]!;
  const run = await runInPage({
    url: `**/v1/onnx/${textKey}/${first.file}`,
    handle: (route) => route.fulfill({ status: 200, body: Buffer.alloc(first.bytes, 7) }),
  });
  assert.match(
    run.warnings ?? '',
    /^the server's ONNX text export was refused by onnxruntime-web \(.+\); the text graphs were made in this page from the whole model instead$/,
  );
  // The classifier at load, then the whole file for the text graphs: every tensor, by ranges only.
  const fetched = tensorsFetched(header, weightResponses(run));
  assert.equal(fetched.names.size, header.tensors.length);
  assert.equal(fetched.bytes, 2 * (8 + header.dataStart) + tensorBytes(isClassifier) + weightsBytes - header.dataStart);
  assert.match(run.timing, /: download \d+ ms, /, "the network still runs the server's export");
  assertSameResults(run.json, serverJson, 'the page with text graphs made from the whole model vs the server');
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
  // Making graphs takes the whole model: every tensor, by ranges (after the classifier's), never the file in one piece.
  const fetched = tensorsFetched(header, weightResponses(run));
  assert.equal(fetched.names.size, header.tensors.length);
  assert.equal(fetched.bytes, 2 * (8 + header.dataStart) + tensorBytes(isClassifier) + weightsBytes - header.dataStart);
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

/** The page's answer to a static server: no /v1/onnx (its 404 is all Chromium logs). */
const noOnnx = {
  url: /\/v1\/onnx$/,
  handle: (route: Route) => route.fulfill({ status: 404, json: { error: { status: 404, code: 'not-found' } } }),
};

test('a static page (no /v1/onnx): the whole model is loaded tensor by tensor from byte ranges (no request for the whole file) and the page makes its graphs, with no note', async () => {
  const run = await runInPage(noOnnx);
  assert.deepEqual(
    run.responses.filter((r) => r.path.startsWith('/v1/onnx/')),
    [],
    'no export is asked for',
  );
  const weights = weightResponses(run);
  assert.ok(
    weights.every((r) => r.range),
    'every request for the weights asks for a range',
  );
  // The first 8 bytes, the header, then the tensors in runs of at most 64 MiB, back to back to the end.
  assert.deepEqual(weights.slice(0, 2).map(askedRange), [
    [0, 7],
    [0, header.dataStart - 1],
  ]);
  let at = header.dataStart;
  for (const r of weights.slice(2)) {
    const [start, end] = askedRange(r)!;
    assert.equal(start, at);
    assert.ok(end - start < 64 * 1024 * 1024);
    at = end + 1;
  }
  assert.equal(at, weightsBytes);
  assert.equal(tensorsFetched(header, weights).names.size, header.tensors.length);
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

test('a static server that ignores ranges: the page reads the weights through once, assigning each tensor as it passes, and matches', async () => {
  const run = await runInPage(noOnnx, {
    url: '**/v1/model/files/model.safetensors',
    handle: async (route) => {
      const { range: _, ...headers } = route.request().headers();
      await route.fulfill({ response: await route.fetch({ headers }) });
    },
  });
  const weights = weightResponses(run);
  assert.deepEqual(
    weights.map((r) => [r.status, r.range]),
    [[200, 'bytes=0-7']],
    'one request, answered with the whole file',
  );
  assert.ok(
    run.messages.some((m) =>
      new RegExp(`model loaded in \\d+ ms \\(${(weightsBytes / 1e6).toFixed(1)} MB of weights\\)$`).test(m),
    ),
  );
  assertSameResults(run.json, serverJson, "the page's own graphs (weights read through) vs the server");
  assert.deepEqual(run.errors, ['Failed to load resource: the server responded with a status of 404 (Not Found)']);
});
