import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePng } from '../../src/io/image-node.js';
import { decodeRle } from '../../src/structures/rle.js';
import { decompressRle } from '../../src/structures/rle-string.js';
import { createRgbImage } from '../../src/viz/image.js';
import type { PredictionJson } from '../../src/inference/prediction-json.js';
import { makeTestModelDir } from './test-model.js';
import { startServer, type RunningServer } from './server-process.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

let model: { dir: string; remove: () => Promise<void> };
let server: RunningServer;
let scene: Buffer;

interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: response JSON of every route
  body: any;
  headers: Headers;
}

async function call(path: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(new URL(path, server.url), init);
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body, headers: response.headers };
}

function form(fields: Record<string, string | string[]>, image?: { bytes: Uint8Array; name: string }): FormData {
  const f = new FormData();
  if (image) f.append('image', new Blob([new Uint8Array(image.bytes)]), image.name);
  for (const [k, v] of Object.entries(fields)) for (const item of Array.isArray(v) ? v : [v]) f.append(k, item);
  return f;
}

const predictForm = (fields: Record<string, string | string[]>, bytes: Uint8Array = scene, name = 'scene-2.png') =>
  call('/v1/predict', { method: 'POST', body: form(fields, { bytes, name }) });

const predictJson = (body: unknown) =>
  call('/v1/predict', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

function assertError(answer: Answer, status: number, code: string, message?: RegExp): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.body.error.status, status);
  assert.equal(answer.body.error.code, code);
  if (message) assert.match(answer.body.error.message, message);
}

before(async () => {
  model = await makeTestModelDir();
  scene = await readFile(join(root, 'examples', 'scene-2.png'));
  server = await startServer([
    '--model',
    model.dir,
    '--max-request-mb',
    '1',
    '--max-pixels',
    '200000',
    '--max-prompts',
    '5',
    '--max-prompt-length',
    '60',
    '--page-text-tower-mb',
    '0',
  ]);
});

after(async () => {
  await server?.stop();
  await model?.remove();
});

describe('ape serve API', () => {
  test('health and model', async () => {
    const health = await call('/v1/health');
    assert.equal(health.status, 200);
    assert.equal(health.body.status, 'ok');
    assert.equal(health.body.model, 'test-tiny');
    assert.equal(health.body.backend, 'wasm');
    assert.equal(health.body.inferenceEngine, 'ort');
    assert.deepEqual(health.body.queue, { running: 0, waiting: 0, capacity: 8 });
    const info = await call('/v1/model');
    assert.equal(info.status, 200);
    assert.equal(info.body.name, 'test-tiny');
    assert.equal(info.body.config.input.size, 128);
    assert.equal(info.body.inferenceEngine, 'ort');
    assert.deepEqual(
      info.body.files.map((f: { name: string }) => f.name),
      ['config.json', 'model.safetensors', 'tokenizer.json'],
    );
    assert.equal(info.body.limits.maxPrompts, 5);
    // --page-text-tower-mb 0: every page's prompts are encoded here.
    assert.equal(info.body.promptEncoding.pageLimitBytes, 0);
    assert.equal(info.body.promptEncoding.encodeIn, 'server');
  });

  test('POST /v1/prompts on the ort engine: the vectors of the texts, encoded by the text export once', async () => {
    const ask = () =>
      fetch(new URL('/v1/prompts', server.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ texts: ['a red circle', 'sand'] }),
      }).then(async (r) => ({ status: r.status, body: await r.json() }));
    const first = await ask();
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.count, 2);
    assert.equal(first.body.encoded, 2);
    assert.equal(Buffer.from(first.body.vectors, 'base64').length, 2 * first.body.dim * 4);
    const again = await ask();
    assert.equal(again.body.encoded, 0);
    assert.equal(again.body.vectors, first.body.vectors);
  });

  test('model files and wasm binaries for the in-browser mode; nothing outside them', async () => {
    const config = await fetch(new URL('/v1/model/files/config.json', server.url));
    assert.equal(config.status, 200);
    assert.equal(await config.text(), await readFile(join(model.dir, 'config.json'), 'utf8'));
    const weights = await fetch(new URL('/v1/model/files/model.safetensors', server.url), { method: 'HEAD' });
    assert.equal(
      Number(weights.headers.get('content-length')),
      (await readFile(join(model.dir, 'model.safetensors'))).length,
    );
    const wasm = await fetch(new URL('/v1/wasm/tfjs-backend-wasm-simd.wasm', server.url));
    assert.equal(wasm.status, 200);
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    assert.deepEqual([...new Uint8Array(await wasm.arrayBuffer()).subarray(0, 4)], [0, 0x61, 0x73, 0x6d]);
    // onnxruntime-web's runtimes: the wasm build (threaded and not) and the WebGPU one, loader and binary.
    for (const name of ['ort-wasm-simd-threaded', 'ort-wasm-simd-threaded.asyncify']) {
      const binary = await fetch(new URL(`/v1/ort/${name}.wasm`, server.url));
      assert.equal(binary.status, 200, name);
      assert.equal(binary.headers.get('content-type'), 'application/wasm');
      assert.deepEqual([...new Uint8Array(await binary.arrayBuffer()).subarray(0, 4)], [0, 0x61, 0x73, 0x6d]);
      const loader = await fetch(new URL(`/v1/ort/${name}.mjs`, server.url), { method: 'HEAD' });
      assert.equal(loader.status, 200, name);
      assert.equal(loader.headers.get('content-type'), 'text/javascript; charset=utf-8');
    }
    for (const path of [
      '/v1/model/files/..%2Fconfig.json',
      '/v1/model/files/%2e%2e',
      '/v1/model/files/%zz',
      '/v1/wasm/..%2F..%2Fpackage.json',
      '/v1/ort/ort.node.min.js',
      '/v1/ort/ort.webgpu.min.mjs.map',
      '/v1/ort/..%2Fpackage.json',
      '/v1/examples/..%2Fpackage.json',
    ]) {
      assertError(await call(path), 404, 'not-found');
    }
    const examples = await call('/v1/examples');
    assert.ok(examples.body.examples.some((e: { name: string }) => e.name === 'scene-2.png'));
  });

  test('every answer carries the cross-origin isolation headers (COOP, COEP, CORP), errors too', async () => {
    for (const [path, status] of [
      ['/v1/model', 200],
      ['/v1/ort/ort-wasm-simd-threaded.mjs', 200],
      ['/v1/health', 200],
      ['/v1/nothing', 404],
    ] as const) {
      const answer = await fetch(new URL(path, server.url));
      await answer.arrayBuffer();
      assert.equal(answer.status, status, path);
      assert.equal(answer.headers.get('cross-origin-opener-policy'), 'same-origin', path);
      assert.equal(answer.headers.get('cross-origin-embedder-policy'), 'require-corp', path);
      assert.equal(answer.headers.get('cross-origin-resource-policy'), 'same-origin', path);
    }
  });

  test('predict, multipart: instances with RLE masks, semantic segments, grounding, timing', async () => {
    const answer = await predictForm({
      vocabulary: 'circle, square,star',
      sentences: 'the red cross to the right of the red star',
      threshold: '0',
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const p = answer.body as PredictionJson;
    assert.deepEqual(p.image, { width: 256, height: 256, id: 0 });
    assert.deepEqual(
      p.prompts.map((x) => [x.index, x.text, x.kind]),
      [
        [0, 'circle', 'vocabulary'],
        [1, 'square', 'vocabulary'],
        [2, 'star', 'vocabulary'],
        [3, 'the red cross to the right of the red star', 'sentence'],
      ],
    );
    assert.ok(p.instances.length > 0);
    for (const inst of p.instances) {
      assert.equal(inst.prompt, p.prompts[inst.category_id]!.text);
      assert.ok(inst.score >= 0 && inst.score <= 1);
      assert.equal(inst.bbox.length, 4);
      assert.deepEqual(inst.segmentation!.size, [256, 256]);
      assert.equal(decodeRle(decompressRle(inst.segmentation!)).length, 256 * 256);
    }
    const sorted = [...p.instances].sort((a, b) => b.score - a.score);
    assert.deepEqual(
      p.instances.map((i) => i.score),
      sorted.map((i) => i.score),
      'best first',
    );
    assert.equal(p.grounding.length, 1);
    assert.equal(p.grounding[0]!.sentence, 'the red cross to the right of the red star');
    assert.ok(p.semantic);
    const covered = p.semantic.segments.reduce((n, s) => n + s.area, 0);
    assert.ok(covered <= 256 * 256 && p.semantic.segments.every((s) => s.area > 0));
    for (const key of ['readAndDecodeMs', 'queueMs', 'inferenceMs', 'totalMs'])
      assert.equal(typeof p.timing![key], 'number');
  });

  test('predict, JSON with a base64 image and the comma rule gives the same answer', async () => {
    const viaForm = await predictForm({ prompt: 'circle,square', threshold: '0.001' });
    const viaJson = await predictJson({ image: scene.toString('base64'), prompt: 'circle,square', threshold: 0.001 });
    assert.equal(viaJson.status, 200, JSON.stringify(viaJson.body));
    assert.deepEqual(viaJson.body.instances, viaForm.body.instances);
    assert.deepEqual(viaJson.body.semantic, viaForm.body.semantic);
    assert.ok(viaJson.body.instances.every((i: { score: number }) => i.score >= 0.001));
  });

  test('limits and bad input: the right status and a message that names the problem', async () => {
    assertError(
      await predictJson({ image: 'A'.repeat(1_200_000), vocabulary: ['a'] }),
      413,
      'request-too-large',
      /more than the limit of 1048576 bytes/,
    );
    // Without a Content-Length (chunked upload) the limit is enforced while reading.
    const chunk = new Uint8Array(64 * 1024).fill(65);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 40) return controller.close();
        sent++;
        controller.enqueue(chunk);
      },
    });
    const chunked = await call('/v1/predict', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    assertError(chunked, 413, 'request-too-large', /larger than the limit of 1048576 bytes/);
    const big = await encodePng(createRgbImage(600, 400, [10, 20, 30]));
    assertError(await predictForm({ vocabulary: 'a' }, big, 'big.png'), 413, 'image-too-large', /240000/);
    assertError(
      await predictForm({ vocabulary: 'a,b,c,d,e,f' }),
      422,
      'too-many-prompts',
      /6 prompts, more than the limit of 5/,
    );
    assertError(
      await predictForm({ sentences: 'x'.repeat(61) }),
      422,
      'prompt-too-long',
      /61 characters, more than the limit of 60/,
    );
    assertError(await predictForm({ vocabulary: ' , ' }), 422, 'no-prompts');
    assertError(await predictForm({ vocabulary: 'a', threshold: 'high' }), 422, 'bad-threshold');
    assertError(
      await predictForm({ vocabulary: 'a' }, scene.subarray(0, 4000), 'cut.png'),
      400,
      'bad-image-truncated',
      /cut\.png/,
    );
    assertError(
      await predictForm({ vocabulary: 'a' }, new TextEncoder().encode('{"not": "an image"}'), 'x.json'),
      415,
      'unsupported-image',
      /JSON/,
    );
    assertError(await predictJson({ vocabulary: ['a'] }), 400, 'no-image');
    assertError(
      await call('/v1/predict', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' }),
      415,
      'unsupported-content-type',
    );
    assertError(
      await call('/v1/predict', {
        method: 'POST',
        headers: { 'content-type': 'multipart/form-data; boundary=zz' },
        body: 'nothing',
      }),
      400,
      'bad-multipart',
    );
    assertError(await call('/v1/predict'), 405, 'method-not-allowed');
    assertError(await call('/v1/nothing'), 404, 'not-found');
    // After all of that the server answers normally.
    assert.equal((await predictForm({ vocabulary: 'circle' })).status, 200);
  });

  test('concurrent requests are queued and each gets its own answer', async () => {
    const sets = [['circle'], ['square', 'star'], ['sky', 'grass', 'water']];
    const alone: PredictionJson[] = [];
    for (const vocabulary of sets)
      alone.push((await predictJson({ image: scene.toString('base64'), vocabulary, threshold: 0 })).body);
    const together = await Promise.all(
      sets.map((vocabulary) => predictJson({ image: scene.toString('base64'), vocabulary, threshold: 0 })),
    );
    together.forEach((answer, i) => {
      assert.equal(answer.status, 200);
      assert.deepEqual(
        answer.body.prompts.map((p: { text: string }) => p.text),
        sets[i],
      );
      assert.deepEqual(answer.body.instances, alone[i]!.instances);
    });
  });

  test('engine memory stays flat across requests', async () => {
    const counts: number[] = [];
    for (let i = 0; i < 6; i++) {
      const vocabulary = i % 2 === 0 ? ['circle', 'square'] : ['a new word', `prompt number ${i}`];
      assert.equal((await predictJson({ image: scene.toString('base64'), vocabulary, threshold: 0 })).status, 200);
      counts.push((await call('/v1/health')).body.engine.numTensors);
    }
    assert.ok(counts[0]! > 0);
    assert.deepEqual(counts, Array(6).fill(counts[0]), `tensor counts ${counts.join(', ')}`);
  });
});

describe('ape serve engines', () => {
  test('ort by default (each export made on first use, with a line on stderr); --engine tfjs gives the same answers', async () => {
    const request = {
      image: scene.toString('base64'),
      vocabulary: ['circle', 'star'],
      sentences: ['the red star'],
      threshold: 0,
    };
    const ort = await predictJson(request);
    assert.equal(ort.status, 200);
    assert.match(server.output(), /model 'test-tiny' from .* \(ort, wasm, loaded in \d+ ms\)/);
    assert.match(server.output(), /ape serve: exporting test-tiny to ONNX for 128-v0-s1 .*\n.*ape serve: exported in/);
    const tfjsServer = await startServer(['--model', model.dir, '--engine', 'tfjs']);
    try {
      assert.match(tfjsServer.output(), /\(tfjs, wasm, loaded in/);
      const health = await (await fetch(new URL('/v1/health', tfjsServer.url))).json();
      assert.equal(health.inferenceEngine, 'tfjs');
      const answer = await fetch(new URL('/v1/predict', tfjsServer.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(request),
      });
      const tfjs = (await answer.json()) as PredictionJson;
      const instances = ort.body.instances as PredictionJson['instances'];
      assert.ok(instances.length > 0, 'no instances to compare');
      assert.deepEqual(
        tfjs.instances.map((i) => [i.prompt, i.query]),
        instances.map((i) => [i.prompt, i.query]),
      );
      tfjs.instances.forEach((inst, k) => {
        assert.ok(Math.abs(inst.score - instances[k]!.score) < 1e-3, `score ${inst.score} vs ${instances[k]!.score}`);
        inst.bbox.forEach((v, j) => assert.ok(Math.abs(v - instances[k]!.bbox[j]!) <= 0.5, `bbox ${inst.bbox}`));
      });
      assert.equal(tfjs.grounding[0]!.query, ort.body.grounding[0].query);
    } finally {
      await tfjsServer.stop();
    }
  });
});

describe('ape serve under pressure', () => {
  test('a full queue answers 503 and the server carries on', async () => {
    const busy = await startServer(['--model', model.dir, '--queue', '0']);
    try {
      const body = JSON.stringify({ image: scene.toString('base64'), vocabulary: ['circle'], threshold: 0 });
      const send = () =>
        fetch(new URL('/v1/predict', busy.url), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
      const answers = await Promise.all([send(), send(), send(), send()]);
      const statuses = answers.map((a) => a.status);
      assert.ok(statuses.includes(200), `statuses ${statuses}`);
      assert.ok(statuses.includes(503), `statuses ${statuses}`);
      assert.ok(
        statuses.every((s) => s === 200 || s === 503),
        `statuses ${statuses}`,
      );
      const refused = await answers[statuses.indexOf(503)]!.json();
      assert.equal(refused.error.code, 'queue-full');
      assert.equal((await send()).status, 200);
    } finally {
      await busy.stop();
    }
  });

  // --timeout-ms counts from arrival: 1 ms is spent reading the body, so the request is refused
  // before it reaches the model (it used to count from queueing, and the model was stopped).
  // The stop-and-reload path of a run past its deadline is in hardening.test.ts.
  test('a request past its time (counted from arrival) gets 504 before it reaches the model', async () => {
    const slow = await startServer(['--model', model.dir, '--timeout-ms', '1']);
    try {
      const answer = await fetch(new URL('/v1/predict', slow.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ image: scene.toString('base64'), vocabulary: ['circle'] }),
      });
      assert.equal(answer.status, 504);
      const error = (await answer.json()).error;
      assert.equal(error.code, 'timeout');
      assert.match(error.message, /longer than the limit of 1 ms before it was queued/);
      const health = await (await fetch(new URL('/v1/health', slow.url))).json();
      assert.equal(health.restarts, 0);
      assert.equal(health.status, 'ok');
      assert.deepEqual(health.queue, { running: 0, waiting: 0, capacity: 8 });
    } finally {
      await slow.stop();
    }
  });
});

test('ape serve without a loadable model says why (exit 2 for a missing path, 1 for a folder without a model)', () => {
  // A path that is not there is refused before anything starts (a usage error, exit 2).
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--port', '0', '--model', join(root, 'no-such-model')],
    { cwd: root, encoding: 'utf8' },
  );
  assert.equal(r.status, 2);
  // A folder that exists but holds no model fails in the model thread, with the loader's message.
  const empty = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--port', '0', '--model', join(root, 'examples')],
    { cwd: root, encoding: 'utf8' },
  );
  assert.equal(empty.status, 1);
  assert.match(empty.stderr, /could not load the model from .*examples: .*config\.json/);
  assert.match(r.stderr, /--model .*no-such-model: no such folder, and not a released model name \(ape-ti, ape-l-d/);
});
