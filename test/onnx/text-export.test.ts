import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { initEngine, tf } from '../../src/engine/engine.js';
import { loadModel } from '../../src/inference/model-files.js';
import { readImage } from '../../src/io/image-node.js';
import { loadReleasedWeights } from '../../src/convert/released-mapping.js';
import { ClipTextEncoder, type TextPooling } from '../../src/text/clip-text-transformer.js';
import { Rng } from '../../src/util/random.js';
import { OrtTextTower, planTextRuns } from '../../src/onnx/ort-text-tower.js';
import {
  exportTextTower,
  TEXT_MANIFEST_FILE,
  textExportKey,
  textExportShape,
  type TextExportShape,
} from '../../src/onnx/text-export.js';
import { loadCachedTextExport, loadTextExport, writeTextExport } from '../../src/onnx/text-export-files.js';
import { OPSET } from '../../src/onnx/kernel-ops.js';
import { fixtureCases, fixtureCheckpoint, fixtureTextConfig, tolerance } from '../parity/towers-fixture.js';
import { repoRoot } from '../cli/ape-cli.js';
import { relativeError } from './relative-error.js';

await initEngine();

const shipped = join(repoRoot, 'models/default');

/** The TF.js tower's vectors of `rows`, as the prompt cache makes them. */
function tfjsVectors(encoder: ClipTextEncoder, rows: number[][], pooling: TextPooling): Float32Array {
  const out = encoder.forward(rows, { pooling });
  const values = out.embeddings.dataSync() as Float32Array;
  tf.dispose([out.embeddings, out.attentionMask]);
  return values;
}

const flat = (vectors: Float32Array[]) => Float32Array.from(vectors.flatMap((v) => [...v]));

/** An OrtTextTower over an in-memory export (each graph holding its weights), as the page makes it. */
function inMemoryTower(encoder: ClipTextEncoder, pooling: TextPooling, shape: TextExportShape): OrtTextTower {
  const exported = exportTextTower(encoder, pooling, shape, { name: 'test', hash: 'h' }, { externalData: false });
  const { graphs } = exported.manifest;
  return new OrtTextTower(
    exported.manifest,
    (graph) => ort.InferenceSession.create(exported.files[graphs.indexOf(graph)]!),
    (type, data, dims) => new ort.Tensor(type, data, dims),
  );
}

/** The APE reference fixture's text tower (width 32, 2 layers, context 77, 49,408 ids) and its six cases. */
async function fixtureTower() {
  const prefix = 'model_vision.model_language.net.';
  const encoder = new ClipTextEncoder(fixtureTextConfig(), new Rng(1));
  loadReleasedWeights(encoder, await fixtureCheckpoint(prefix), { prefix });
  const cases = fixtureCases();
  const ids = cases.values('text.input_ids');
  const rows = Array.from({ length: 6 }, (_, i) => ids.slice(i * 77, (i + 1) * 77));
  return { encoder, rows, reference: Float32Array.from(cases.values('text.output')) };
}

test('planTextRuns: rows sorted by length, batches of 64 / 8 / 1 (padding a batch only past half full), the shortest length bucket that holds each', () => {
  const shape = { batch: [1, 8, 64], lengths: [4, 8, 16, 32, 64, 77] };
  assert.deepEqual(planTextRuns([2, 10, 3, 3, 40, 2, 5], shape), [
    { rows: [0, 5, 2, 3, 6, 1, 4], batch: 8, length: 64 },
  ]);
  const thirteen = planTextRuns(new Array<number>(13).fill(2), shape);
  assert.deepEqual(
    thirteen.map((r) => [r.rows.length, r.batch, r.length]),
    [
      [8, 8, 4],
      [5, 8, 4],
    ],
  );
  const runs = planTextRuns([...new Array<number>(130).fill(7), 3, 3, 76], shape);
  assert.deepEqual(
    runs.map((r) => [r.rows.length, r.batch, r.length]),
    [
      [64, 64, 8],
      [64, 64, 8],
      [5, 8, 77],
    ],
  );
  assert.deepEqual(runs[0]!.rows.slice(0, 3), [130, 131, 0]);
  assert.deepEqual(textExportShape(77), { batch: [1, 8, 64], lengths: [3, 6, 12, 24, 48, 77] });
  assert.deepEqual(textExportShape(16), { batch: [1, 8, 64], lengths: [3, 6, 12, 16] });
  assert.equal(textExportKey(textExportShape(16)), 'text-b1.8.64-l3.6.12.16');
});

test('the ape-reference text tower on ONNX Runtime gives the TF.js vectors within 1e-4 relative and APE text.output within the fixture tolerance; mean pooling too', async () => {
  const { encoder, rows, reference } = await fixtureTower();
  try {
    for (const pooling of ['eot', 'mean'] as const) {
      const tower = inMemoryTower(encoder, pooling, { batch: [1, 8], lengths: [4, 16, 77] });
      const ortVectors = flat(await tower.encode(rows));
      await tower.release();
      const tfjs = tfjsVectors(encoder, rows, pooling);
      const rel = relativeError(ortVectors, tfjs);
      assert.ok(rel < 1e-4, `${pooling}: ORT vs TF.js ${rel}`);
      if (pooling === 'eot') {
        let maxAbs = 0;
        reference.forEach((v, i) => {
          maxAbs = Math.max(maxAbs, Math.abs(v - ortVectors[i]!));
        });
        assert.ok(maxAbs <= tolerance('text'), `ORT vs APE text.output: ${maxAbs} > ${tolerance('text')}`);
      }
    }
  } finally {
    encoder.dispose();
  }
});

test('padding never changes a vector: each prompt alone (1 row, its own length bucket), in padded batches of 8 at 12 and at 77 positions, everything padded to 64 rows x 77, and in reversed order give the same bits', async () => {
  const { encoder, rows } = await fixtureTower();
  const buckets = inMemoryTower(encoder, 'eot', textExportShape(77));
  const widest = inMemoryTower(encoder, 'eot', { batch: [64], lengths: [77] });
  try {
    // Five rows of 3..12 positions and one of the whole context (77): one batch of 8 at 77 (two
    // padding rows); the five short ones alone: a batch of 8 at 12.
    const ends = rows.map((r) => r.indexOf(Math.max(...r)));
    assert.deepEqual(
      planTextRuns(ends, buckets.manifest.shape).map((r) => [r.batch, r.length]),
      [[8, 77]],
    );
    assert.deepEqual(
      planTextRuns(ends.slice(0, 5), buckets.manifest.shape).map((r) => [r.batch, r.length]),
      [[8, 12]],
    );
    const together = flat(await buckets.encode(rows));
    const short = flat(await buckets.encode(rows.slice(0, 5)));
    assert.deepEqual(short, together.slice(0, short.length), 'the five short rows at 12 positions differ from 77');
    const alone = flat((await Promise.all(rows.map((r) => buckets.encode([r])))).map((v) => v[0]!));
    const padded = flat(await widest.encode(rows));
    const reversed = flat((await buckets.encode([...rows].reverse())).reverse());
    // Bit for bit: rows never mix, and positions past a row's end token never reach it.
    for (const [what, other] of [
      ['alone', alone],
      ['64 x 77', padded],
      ['reversed order', reversed],
    ] as const)
      assert.deepEqual(other, together, `${what} differs from the padded batch`);
    assert.ok(buckets.totals.runs >= 7);
  } finally {
    await buckets.release();
    await widest.release();
    encoder.dispose();
  }
});

test('the shipped model on the ort engine encodes names and sentences on ONNX Runtime (the TF.js vectors within 1e-4 relative), caches the text export, and predicts what TF.js predicts', async () => {
  const cache = await mkdtemp(join(tmpdir(), 'ape-text-ort-'));
  const messages: string[] = [];
  const tfjs = await loadModel(shipped, { engine: 'tfjs', promptCache: false });
  const model = await loadModel(shipped, {
    engine: 'ort',
    promptCache: false,
    ort: { cacheDir: cache, onExport: (m) => messages.push(m) },
  });
  // The TF.js tower of the ort model must not run: every vector comes from ONNX Runtime.
  const towerForward = model.language.net.forward.bind(model.language.net);
  let tfjsCalls = 0;
  Object.assign(model.language.net, {
    forward: (...args: Parameters<typeof towerForward>) => {
      tfjsCalls++;
      return towerForward(...args);
    },
  });
  try {
    const texts = [
      'circle',
      'star',
      'sky',
      'gravel',
      'the red star',
      'the small green ring on the left of the large blue circle below the third yellow hexagon',
      ...Array.from({ length: 70 }, (_, i) => `name${i}`),
    ];
    const got = await model.encodePromptsOnEngine(texts);
    const want = tfjs.encodePrompts(texts);
    const rel = relativeError(got.dataSync() as Float32Array, want.dataSync() as Float32Array);
    assert.ok(rel < 1e-4, `ORT vs TF.js: ${rel}`);
    tf.dispose([got, want]);
    assert.equal(model.promptCache.stats().encoded, texts.length);
    assert.deepEqual(await readdir(cache), ['text-b1.8.64-l3.6.12.16']);
    assert.ok(messages.some((m) => /^exporting tiny's text tower to ONNX \(text-b1\.8\.64-l3\.6\.12\.16/.test(m)));

    const scene = await readImage(join(repoRoot, 'examples/scene-2.png'));
    const options = {
      vocabulary: ['circle', 'star', 'sky', 'water', 'heart'],
      sentences: ['the blue ring'],
      threshold: 0.2,
    };
    const [a, b] = [await model.predict(scene, options), await tfjs.predict(scene, options)];
    assert.ok(b.instances.length > 0);
    assert.deepEqual(
      a.instances.map((i) => [i.prompt, i.query]),
      b.instances.map((i) => [i.prompt, i.query]),
    );
    a.instances.forEach((inst, k) => {
      assert.ok(Math.abs(inst.score - b.instances[k]!.score) < 1e-4, `score ${inst.score} vs ${b.instances[k]!.score}`);
      inst.box.forEach((v, j) => assert.ok(Math.abs(v - b.instances[k]!.box[j]!) < 1e-2));
    });
    assert.deepEqual(
      a.grounding.map((g) => [g.sentence, g.query]),
      b.grounding.map((g) => [g.sentence, g.query]),
    );
    // 'water', 'heart' and the sentence were new: encoded on ONNX Runtime too; the trainable tower stays loaded.
    assert.equal(model.promptCache.stats().encoded, texts.length + 3);
    assert.equal(tfjsCalls, 0);
    assert.equal(model.textTowerReleased, false);
  } finally {
    model.dispose();
    tfjs.dispose();
    await rm(cache, { recursive: true, force: true });
  }
});

test("a frozen text tower's TF.js weights are released once its export has encoded: new prompts still encode on ONNX Runtime, the TF.js path refuses them by name, cached ones are served", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ape-text-frozen-'));
  try {
    const config = JSON.parse(await readFile(join(shipped, 'config.json'), 'utf8'));
    config.config.text.trainable = false;
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    for (const f of ['model.safetensors', 'tokenizer.json']) await copyFile(join(shipped, f), join(dir, f));
    const tfjs = await loadModel(dir, { engine: 'tfjs', promptCache: false });
    const model = await loadModel(dir, { engine: 'ort', promptCache: false });
    try {
      const before = tf.memory().numBytes;
      const first = await model.encodePromptsOnEngine(['circle', 'star']);
      assert.ok(model.textTowerReleased);
      const textBytes = model.language.parameterCount() * 4;
      assert.ok(before - tf.memory().numBytes >= textBytes - 1024, 'the text weights were not freed');
      const later = await model.encodePromptsOnEngine(['the red star', 'circle']);
      const want = tfjs.encodePrompts(['circle', 'star', 'the red star', 'circle']);
      const got = tf.concat([first, later]);
      assert.ok(relativeError(got.dataSync() as Float32Array, want.dataSync() as Float32Array) < 1e-4);
      tf.dispose([first, later, want, got]);
      model.encodePrompts(['star']).dispose(); // from the cache
      assert.throws(
        () => model.encodePrompts(['square']),
        /cannot encode 1 prompt \(first: 'square'\): the text tower's TF\.js weights were released \(engine 'ort'/,
      );
      await model.setInferenceRunner(null)?.release();
      assert.throws(
        () =>
          model.predictSync([{ width: 32, height: 32, data: new Uint8Array(32 * 32 * 3) }], { vocabulary: ['ring'] }),
        /weights were released/,
      );
    } finally {
      model.dispose();
      tfjs.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a cached text export is reused; one from other weights, another opset or buckets, or with a truncated graph or altered weights file is made again', async () => {
  const cache = await mkdtemp(join(tmpdir(), 'ape-text-cache-'));
  const encoder = new ClipTextEncoder({ ...fixtureTextConfig(), vocabSize: 300, contextLength: 16 }, new Rng(5));
  const shape = { batch: [1, 8], lengths: [4, 16] };
  const dir = join(cache, textExportKey(shape));
  const messages: string[] = [];
  let made = 0;
  const load = (hash: string, s: TextExportShape = shape) =>
    loadCachedTextExport({
      dirs: [dir],
      hash,
      shape: s,
      make: () => {
        made++;
        return exportTextTower(encoder, 'eot', s, { name: 'test', hash }, { externalData: true });
      },
      threads: 1,
      report: (m) => messages.push(m),
    });
  const rows = [
    [298, 5, 299, ...new Array<number>(13).fill(0)],
    [298, 7, 8, 9, 299, ...new Array<number>(11).fill(0)],
  ];
  const want = tfjsVectors(encoder, rows, 'eot');
  const check = async (tower: OrtTextTower) => {
    assert.ok(relativeError(flat(await tower.encode(rows)), want) < 1e-4);
    await tower.release();
  };
  try {
    await check(await load('h1'));
    assert.equal(made, 1);
    assert.deepEqual((await readdir(dir)).sort(), [
      TEXT_MANIFEST_FILE,
      'text-1x16.onnx',
      'text-1x4.onnx',
      'text-8x16.onnx',
      'text-8x4.onnx',
      'text.onnx.data',
    ]);
    await check(await load('h1'));
    assert.equal(made, 1);

    const why = () => messages.filter((m) => m.endsWith('making it again')).at(-1) ?? '';
    await check(await load('h2'));
    assert.match(why(), /was made from other weights \(model hash h1, these are h2\); making it again$/);
    const manifestPath = join(dir, TEXT_MANIFEST_FILE);
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
    await writeFile(manifestPath, JSON.stringify({ ...manifest, opset: OPSET - 1 }));
    await check(await load('h2'));
    assert.match(why(), new RegExp(`has opset ${OPSET - 1}; this exporter writes opset ${OPSET}; making it again$`));
    await check(await load('h2', { batch: [1, 8], lengths: [8, 16] }));
    assert.match(why(), /was made for text-b1\.8-l4\.16, not text-b1\.8-l8\.16; making it again$/);
    await writeTextExport(
      dir,
      exportTextTower(encoder, 'eot', shape, { name: 'test', hash: 'h2' }, { externalData: true }),
    );
    await truncate(join(dir, 'text-8x4.onnx'), 100);
    await check(await load('h2'));
    assert.match(
      why(),
      /is unusable \(OrtTextTower: .*text-8x4\.onnx has 100 bytes, the export wrote \d+; export again\); making it again$/,
    );
    const data = join(dir, 'text.onnx.data');
    const bytes = await readFile(data);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    await writeFile(data, bytes);
    await assert.rejects(loadTextExport(dir), /text\.onnx\.data is not the one the export wrote/);
    await check(await load('h2'));
    assert.match(why(), /is unusable \(OrtTextTower: the export's weights file .* is not the one the export wrote/);
    assert.equal(made, 6);
  } finally {
    encoder.dispose();
    await rm(cache, { recursive: true, force: true });
  }
});
