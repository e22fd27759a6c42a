import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/engine.js';
import { loadModel } from '../../src/inference/model-files.js';
import { checkExportFolder, filesHash, writeNetworkExport } from '../../src/onnx/export-files.js';
import { exportKey, exportNetwork, MANIFEST_FILE, type ExportShape } from '../../src/onnx/export-network.js';
import { TEXT_MANIFEST_FILE, textExportKey, textExportShape } from '../../src/onnx/text-export.js';
import { createApeServer, type ApeServer } from '../../src/server/app.js';
import { exportShapeFromQuery } from '../../src/server/onnx-exports.js';
import { requestedRange } from '../../src/server/static-files.js';
import { makeTestModelDir } from './test-model.js';

/**
 * The ONNX exports `ape serve` hands to the page (/v1/onnx): the manifest of a shape, made on
 * first request and cached next to the model as predict caches it, checked against the model's
 * hash; the files it names, with ranges and ETags; nothing else.
 */

let model: { dir: string; remove: () => Promise<void> };
let app: ApeServer;
let base: string;
let hash: string;
const notes: string[] = [];
const SHAPE: ExportShape = { size: 128, vocabulary: 0, sentences: 1 };
const KEY = exportKey(SHAPE);
const QUERY = 'size=128&sentences=1';

before(async () => {
  model = await makeTestModelDir(5);
  hash = await filesHash([join(model.dir, 'config.json'), join(model.dir, 'model.safetensors')]);
  app = await createApeServer({ modelDir: model.dir, engine: 'tfjs', log: (line) => notes.push(line) });
  base = (await app.listen(0)).url;
});

after(async () => {
  await app?.close();
  await model?.remove();
});

const get = (path: string, headers: Record<string, string> = {}) => fetch(new URL(path, base), { headers });

test('requestedRange: one range of bytes, the last N, open-ended, past the end; anything else is the whole file', () => {
  assert.deepEqual(requestedRange('bytes=0-7', 100), { start: 0, end: 7 });
  assert.deepEqual(requestedRange('bytes=90-', 100), { start: 90, end: 99 });
  assert.deepEqual(requestedRange('bytes=90-500', 100), { start: 90, end: 99 });
  assert.deepEqual(requestedRange('bytes=-10', 100), { start: 90, end: 99 });
  assert.deepEqual(requestedRange('bytes=-500', 100), { start: 0, end: 99 });
  assert.equal(requestedRange('bytes=100-', 100), 'unsatisfiable');
  assert.equal(requestedRange('bytes=-0', 100), 'unsatisfiable');
  for (const whole of [undefined, '', 'bytes=5-2', 'bytes=0-1,4-5', 'items=0-1', 'bytes=-', 'bytes=a-b'])
    assert.equal(requestedRange(whole, 100), null, String(whole));
});

test('exportShapeFromQuery: the model sizes, a bounded sentence count; each bad field named', () => {
  const limits = { sizes: [128, 64], maxSentences: 5 };
  const q = (text: string) => exportShapeFromQuery(new URLSearchParams(text), limits);
  assert.deepEqual(q('size=128&sentences=1'), SHAPE);
  assert.deepEqual(q('size=64'), { size: 64, vocabulary: 0, sentences: 0 });
  const bad = (text: string, message: RegExp) =>
    assert.throws(
      () => q(text),
      (e: Error & { status?: number }) => e.status === 400 && message.test(e.message),
    );
  bad('', /^export shape: size is missing$/);
  bad('size=256', /^export shape: size must be an integer from 1 to 128, got '256'$/);
  bad('size=96', /^export shape: size must be 128 or 64 \(this model's input\), got 96$/);
  bad('size=128&valid=128x96', /^export shape: 'valid' is not a field \(size, sentences, vocabulary\)$/);
  bad('size=128&sentences=6', /sentences must be an integer from 0 to 5, got '6'/);
  bad('size=128&sentences=-1', /sentences must be an integer from 0 to 5, got '-1'/);
  bad('size=128&vocabulary=3', /vocabulary must be an integer from 0 to 0, got '3'/);
  bad('size=128&path=..%2F', /^export shape: 'path' is not a field \(size, sentences, vocabulary\)$/);
});

test('GET /v1/onnx names the model and its hash; /v1/model carries the hash too', async () => {
  const index = await (await get('/v1/onnx')).json();
  assert.deepEqual(index.model, { name: 'test-tiny', hash });
  assert.equal(index.manifest, MANIFEST_FILE);
  assert.equal(index.textManifest, TEXT_MANIFEST_FILE);
  assert.equal((await (await get('/v1/model')).json()).hash, hash);
});

test('the manifest of a shape: made on first request into the model folder, then served from that cache with ETag and 304', async () => {
  const first = await get(`/v1/onnx/export?${QUERY}`);
  assert.equal(first.status, 200);
  assert.equal(first.headers.get('content-type'), 'application/json; charset=utf-8');
  const manifest = await first.json();
  assert.equal(manifest.model.hash, hash);
  assert.equal(exportKey(manifest.shape), KEY);
  assert.ok(
    notes.some((n) => n.startsWith(`exporting test-tiny to ONNX for ${KEY}`)),
    notes.join('\n'),
  );
  const dir = join(model.dir, 'onnx', KEY);
  assert.deepEqual(manifest, JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')));
  const etag = first.headers.get('etag')!;
  assert.match(etag, new RegExp(`^"${hash.slice(0, 16)}\\.`), 'the ETag is keyed by the model hash');

  const made = notes.length;
  const again = await get(`/v1/onnx/export?${QUERY}`, { 'if-none-match': etag });
  assert.equal(again.status, 304);
  assert.equal(notes.length, made, 'served from the cache, not made again');

  // Each file the manifest names, whole and by range, with a content type and the same ETag scheme.
  for (const segment of manifest.segments) {
    const bytes = await readFile(join(dir, segment.file));
    assert.equal(segment.bytes, bytes.length);
    const whole = await get(`/v1/onnx/${KEY}/${segment.file}`);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('content-type'), 'application/octet-stream');
    assert.equal(whole.headers.get('accept-ranges'), 'bytes');
    assert.match(whole.headers.get('etag')!, new RegExp(`^"${hash.slice(0, 16)}\\.`));
    assert.ok(Buffer.from(await whole.arrayBuffer()).equals(bytes));
    const part = await get(`/v1/onnx/${KEY}/${segment.file}`, { range: 'bytes=100-199' });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-199/${bytes.length}`);
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(100, 200)));
    const past = await get(`/v1/onnx/${KEY}/${segment.file}`, { range: `bytes=${bytes.length}-` });
    assert.equal(past.status, 416);
    assert.equal(past.headers.get('content-range'), `bytes */${bytes.length}`);
    const stale = await get(`/v1/onnx/${KEY}/${segment.file}`, { 'if-match': '"another-version"' });
    assert.equal(stale.status, 412);
  }
});

test('only the files an asked-for export names: traversal, other files in its folder, unknown keys and names are 404', async () => {
  await get(`/v1/onnx/export?${QUERY}`);
  await writeFile(join(model.dir, 'onnx', KEY, 'notes.txt'), 'not part of the export');
  for (const path of [
    `/v1/onnx/${KEY}/notes.txt`,
    `/v1/onnx/${KEY}/segment-9.onnx`,
    `/v1/onnx/${KEY}/..%2F..%2Fconfig.json`,
    `/v1/onnx/${KEY}/..%2F..%2Fmodel.safetensors`,
    `/v1/onnx/${KEY}%2F..%2F..%2Fconfig.json`,
    '/v1/onnx/..%2Fconfig.json',
    `/v1/onnx/${KEY}/%2e%2e`,
    `/v1/onnx/${KEY}/%zz`,
    `/v1/onnx/${KEY}/segment-0.onnx/x`,
    '/v1/onnx/128-128x128-v0-s2/segment-0.onnx',
    `/v1/onnx/${KEY}`,
    '/v1/onnx/',
  ]) {
    const answer = await get(path);
    assert.equal(answer.status, 404, path);
    assert.equal((await answer.json()).error.code, 'not-found', path);
  }
  const post = await fetch(new URL(`/v1/onnx/export?${QUERY}`, base), { method: 'POST' });
  assert.equal(post.status, 405);
  const badShape = await get('/v1/onnx/export?size=128&sentences=x');
  assert.equal(badShape.status, 400);
  assert.equal((await badShape.json()).error.code, 'bad-export-shape');
});

test("the hash check: a cached export of other weights (or a tampered manifest) is made again from the model's own", async () => {
  await get(`/v1/onnx/export?${QUERY}`);
  const dir = join(model.dir, 'onnx', KEY);
  const path = join(dir, MANIFEST_FILE);
  const manifest = JSON.parse(await readFile(path, 'utf8'));
  const other = 'f'.repeat(64);
  await writeFile(path, JSON.stringify({ ...manifest, model: { ...manifest.model, hash: other } }));
  notes.length = 0;
  const served = await (await get(`/v1/onnx/export?${QUERY}`)).json();
  assert.equal(served.model.hash, hash);
  assert.equal(
    notes[0],
    `the ONNX export in ${dir} was made from other weights (model hash ${other.slice(0, 12)}, these are ${hash.slice(0, 12)}); making it again`,
  );
  assert.equal(JSON.parse(await readFile(path, 'utf8')).model.hash, hash);
});

test('an export whose weights are in external data (as APE-D at 1 GiB): served with its .onnx.data; a foreign data file is made again', async () => {
  // Written as Node's cache holds it, forced to external data with the exporter's option.
  await initEngine({ backend: 'wasm' });
  const shape: ExportShape = { size: 128, vocabulary: 0, sentences: 0 };
  const key = exportKey(shape);
  const dir = join(model.dir, 'onnx', key);
  const tfjs = await loadModel(model.dir, { engine: 'tfjs', promptCache: false });
  try {
    await writeNetworkExport(dir, exportNetwork(tfjs, shape, hash, { externalData: 'always' }));
  } finally {
    tfjs.dispose();
  }
  const made = notes.length;
  const manifest = await (await get('/v1/onnx/export?size=128')).json();
  assert.equal(notes.length, made, 'the cached export is served as it is');
  const data = manifest.segments[0].data;
  assert.equal(data.file, 'segment-0.onnx.data');
  const bytes = await readFile(join(dir, data.file));
  assert.equal(bytes.length, data.bytes);
  const answer = await get(`/v1/onnx/${key}/${data.file}`, { range: `bytes=${data.bytes - 16}-` });
  assert.equal(answer.status, 206);
  assert.ok(Buffer.from(await answer.arrayBuffer()).equals(bytes.subarray(data.bytes - 16)));
  assert.equal((await checkExportFolder(dir)).files.get(data.file), data.bytes);

  // Another data file of the same size: its fingerprint differs, the export is made again (in-graph weights now).
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
  await writeFile(join(dir, data.file), bytes);
  const remade = await (await get('/v1/onnx/export?size=128')).json();
  assert.match(
    notes.slice(made).join('\n'),
    new RegExp(
      `^the ONNX export in ${dir} is unusable \\(the export's weights file .*segment-0\\.onnx\\.data is not the one the export wrote`,
    ),
  );
  assert.equal(remade.segments[0].data, undefined);
  assert.equal((await get(`/v1/onnx/${key}/${data.file}`)).status, 404, 'a data file the new manifest does not name');
  await rm(join(dir, data.file), { force: true });
});

test("the text tower's export: made on first request into the model folder, then served from the cache; its graphs and weights file whole and by range; a foreign weights file is made again", async () => {
  const key = textExportKey(textExportShape(16));
  const dir = join(model.dir, 'onnx', key);
  const made = notes.length;
  const first = await get('/v1/onnx/text');
  assert.equal(first.status, 200);
  const manifest = await first.json();
  assert.deepEqual(manifest, JSON.parse(await readFile(join(dir, TEXT_MANIFEST_FILE), 'utf8')));
  assert.equal(manifest.model.hash, hash);
  assert.equal(textExportKey(manifest.shape), key);
  assert.ok(
    notes.slice(made).some((n) => n.startsWith(`exporting test-tiny's text tower to ONNX (${key}, once per model)`)),
    notes.join('\n'),
  );
  const etag = first.headers.get('etag')!;
  assert.match(etag, new RegExp(`^"${hash.slice(0, 16)}\\.`));
  const cached = notes.length;
  assert.equal((await get('/v1/onnx/text', { 'if-none-match': etag })).status, 304);
  assert.equal(notes.length, cached, 'served from the cache, not made again');

  // 3 batch buckets x 4 lengths (3, 6, 12, then the context of 16), one weights file.
  assert.equal(manifest.graphs.length, 12);
  assert.equal(manifest.data.file, 'text.onnx.data');
  for (const { file, bytes } of [...manifest.graphs, manifest.data]) {
    const onDisk = await readFile(join(dir, file));
    assert.equal(onDisk.length, bytes, file);
    const whole = await get(`/v1/onnx/${key}/${file}`);
    assert.equal(whole.status, 200, file);
    assert.match(whole.headers.get('etag')!, new RegExp(`^"${hash.slice(0, 16)}\\.`));
    assert.ok(Buffer.from(await whole.arrayBuffer()).equals(onDisk), file);
  }
  const part = await get(`/v1/onnx/${key}/text.onnx.data`, { range: 'bytes=16-31' });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), `bytes 16-31/${manifest.data.bytes}`);
  assert.ok(
    Buffer.from(await part.arrayBuffer()).equals((await readFile(join(dir, 'text.onnx.data'))).subarray(16, 32)),
  );

  await writeFile(join(dir, 'notes.txt'), 'not part of the export');
  for (const path of [
    `/v1/onnx/${key}/notes.txt`,
    `/v1/onnx/${key}/text-2x3.onnx`,
    `/v1/onnx/${key}/..%2F..%2Fconfig.json`,
  ])
    assert.equal((await get(path)).status, 404, path);
  const query = await get('/v1/onnx/text?batch=1');
  assert.equal(query.status, 400);
  assert.equal((await query.json()).error.message, "text export: 'batch' is not a field (it takes none)");

  // The weights file altered in place (same size): refused by its fingerprint, the export is made again.
  const data = await readFile(join(dir, 'text.onnx.data'));
  data[0] = data[0]! ^ 0xff;
  await writeFile(join(dir, 'text.onnx.data'), data);
  const before = notes.length;
  const remade = await (await get('/v1/onnx/text')).json();
  assert.match(
    notes.slice(before).join('\n'),
    new RegExp(
      `^the ONNX export in ${dir} is unusable \\(OrtTextTower: the export's weights file .*text\\.onnx\\.data is not the one the export wrote`,
    ),
  );
  assert.equal(remade.data.fingerprint, manifest.data.fingerprint, 'made again from the same weights');
  assert.ok(
    (await readFile(join(dir, 'text.onnx.data'))).equals(
      await (await get(`/v1/onnx/${key}/text.onnx.data`)).arrayBuffer().then((b) => Buffer.from(b)),
    ),
  );
});

test('model files: ETag keyed by the model hash, 304, byte ranges (the page reads the text tower out of the weights)', async () => {
  const weights = await readFile(join(model.dir, 'model.safetensors'));
  const head = await get('/v1/model/files/model.safetensors', { range: 'bytes=0-7' });
  assert.equal(head.status, 206);
  assert.equal(head.headers.get('content-range'), `bytes 0-7/${weights.length}`);
  assert.ok(Buffer.from(await head.arrayBuffer()).equals(weights.subarray(0, 8)));
  const etag = head.headers.get('etag')!;
  assert.match(etag, new RegExp(`^"${hash.slice(0, 16)}\\.`));
  assert.equal((await get('/v1/model/files/model.safetensors', { 'if-none-match': etag })).status, 304);
  const same = await get('/v1/model/files/model.safetensors', { range: 'bytes=8-15', 'if-match': etag });
  assert.equal(same.status, 206);
  // If-Range with another version: the whole file, not a range of a file that changed.
  const changed = await get('/v1/model/files/model.safetensors', { range: 'bytes=8-15', 'if-range': '"old"' });
  assert.equal(changed.status, 200);
  assert.equal(Number(changed.headers.get('content-length')), weights.length);
  await changed.arrayBuffer();
});
