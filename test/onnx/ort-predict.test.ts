import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/engine.js';
import { loadModel } from '../../src/inference/model-files.js';
import type { Prediction } from '../../src/inference/results.js';
import { readImage } from '../../src/io/image-node.js';
import type { RgbImage } from '../../src/io/image-types.js';
import { OrtEngine } from '../../src/onnx/ort-engine.js';
import { MANIFEST_FILE } from '../../src/onnx/export-network.js';
import { repoRoot } from '../cli/ape-cli.js';
import { decompressRle } from '../../src/structures/rle-string.js';
import { decodeRle } from '../../src/structures/rle.js';
import type { CompressedRle } from '../../src/structures/rle.js';

await initEngine();

/** The top rows of an image: a non-square input, so the export has padding geometry. */
function topRows(image: RgbImage, rows: number): RgbImage {
  return { width: image.width, height: rows, data: image.data.slice(0, image.width * rows * 3) } as RgbImage;
}

/**
 * The engines' mask logits differ by float rounding (~1e-6), so a pixel whose logit sits at the
 * threshold may fall either way: at most 2 pixels, or 0.1% of the mask, may differ.
 */
function assertSameMask(a: CompressedRle | null, b: CompressedRle | null): void {
  if (a === null || b === null) {
    assert.equal(a, b);
    return;
  }
  assert.deepEqual(a.size, b.size);
  const x = decodeRle(decompressRle(a));
  const y = decodeRle(decompressRle(b));
  let differ = 0;
  let area = 0;
  x.forEach((v, i) => {
    differ += v === y[i] ? 0 : 1;
    area += v;
  });
  assert.ok(differ <= Math.max(2, area * 1e-3), `${differ} of ${area} mask pixels differ`);
}

function assertSamePrediction(ort: Prediction, tfjs: Prediction): void {
  assert.equal(ort.instances.length, tfjs.instances.length);
  assert.ok(tfjs.instances.length > 0);
  ort.instances.forEach((a, i) => {
    const b = tfjs.instances[i]!;
    assert.deepEqual([a.prompt, a.query], [b.prompt, b.query]);
    assert.ok(Math.abs(a.score - b.score) < 1e-4, `score ${a.score} vs ${b.score}`);
    a.box.forEach((v, k) => assert.ok(Math.abs(v - b.box[k]!) < 1e-2, `box ${a.box} vs ${b.box}`));
    assertSameMask(a.mask, b.mask);
  });
  assert.deepEqual(
    ort.grounding.map((g) => [g.sentence, g.query]),
    tfjs.grounding.map((g) => [g.sentence, g.query]),
  );
  assert.deepEqual(ort.semantic!.labels, tfjs.semantic!.labels);
}

test("predict on the ort engine gives the TF.js engine's instances, masks, grounding and semantic map (square and padded inputs on one export; 3 sentences on the 4-sentence export); cached exports are reused, and made again when stale or damaged; at most maxLoaded stay loaded", async () => {
  const dir = join(repoRoot, 'models/default');
  const model = await loadModel(dir, { engine: 'tfjs' });
  const cache = await mkdtemp(join(tmpdir(), 'ape-ort-'));
  const messages: string[] = [];
  const source = { dir, files: [join(dir, 'config.json'), join(dir, 'model.safetensors')] };
  try {
    const scene = await readImage(join(repoRoot, 'examples/scene-2.png'));
    // 5 names (scored by graphs of their own: the network export takes none) and a sentence (fused with the image).
    const options = {
      vocabulary: ['circle', 'star', 'sky', 'water', 'gravel'],
      sentences: ['the red star'],
      threshold: 0.2,
    };
    // Three sentences: the export is made for 4, the fourth row padding.
    const three = { ...options, sentences: ['the red star', 'the blue circle', 'the grass'] };
    const images = [scene, topRows(scene, 200)];
    const tfjs = await model.predict(images, options);
    const tfjsThree = await model.predict(images, three);
    const engine = new OrtEngine(model, source, { cacheDir: cache, onExport: (m) => messages.push(m) });
    model.setInferenceRunner(engine);
    assert.equal(model.inferenceEngine, 'ort');
    const ort = await model.predict(images, options);
    ort.forEach((p, i) => assertSamePrediction(p, tfjs[i]!));
    // The square and the 256x200 image run on one export; the vocabulary's scoring graphs have theirs
    // (the names' vectors came from TF.js's predict, so no text export).
    const scores = 'scores-q100-d128-w256.1024.4096';
    assert.deepEqual((await readdir(cache)).sort(), ['256-v0-s1', scores]);
    const ortThree = await model.predict(images, three);
    ortThree.forEach((p, i) => assertSamePrediction(p, tfjsThree[i]!));
    assert.equal(ortThree[0]!.grounding.length, 3);
    assert.deepEqual((await readdir(cache)).sort(), ['256-v0-s1', '256-v0-s4', scores]);
    await engine.release();

    // A fresh engine finds the cached exports; a cached export of other weights is made again.
    messages.length = 0;
    const again = new OrtEngine(model, source, { cacheDir: cache, onExport: (m) => messages.push(m) });
    model.setInferenceRunner(again);
    assertSamePrediction(await model.predict(scene, options), tfjs[0]!);
    assert.equal(messages.length, 0, messages.join('; '));
    await again.release();
    await writeFile(
      join(cache, '256-v0-s1', MANIFEST_FILE),
      JSON.stringify({ format: 'ape-onnx', model: { hash: 'other' } }),
    );
    await writeFile(join(cache, '256-v0-s4', MANIFEST_FILE), '{"format": "ape-onnx", ');
    const third = new OrtEngine(model, source, { cacheDir: cache, onExport: (m) => messages.push(m) });
    model.setInferenceRunner(third);
    (await model.predict(images, options)).forEach((p, i) => assertSamePrediction(p, tfjs[i]!));
    (await model.predict(images, three)).forEach((p, i) => assertSamePrediction(p, tfjsThree[i]!));
    assert.equal(
      messages.filter((m) => /^exporting tiny to ONNX for 256-v0-s[14] /.test(m)).length,
      2,
      messages.join('; '),
    );
    await third.release();

    // With room for one loaded export, the other bucket's is released and loaded again from disk.
    messages.length = 0;
    const small = new OrtEngine(model, source, { cacheDir: cache, maxLoaded: 1, onExport: (m) => messages.push(m) });
    model.setInferenceRunner(small);
    (await model.predict(images, three)).forEach((p, i) => assertSamePrediction(p, tfjsThree[i]!));
    assert.deepEqual(small.loaded, ['256-v0-s4']);
    assertSamePrediction(await model.predict(scene, options), tfjs[0]!);
    assert.deepEqual(small.loaded, ['256-v0-s1']);
    assert.deepEqual(messages, []);
    await small.release();
    await assert.rejects(
      model.predict(scene, { ...options, fusion: 'word' }),
      /the ort engine runs sentence fusion only/,
    );
  } finally {
    model.setInferenceRunner(null);
    model.dispose();
    await rm(cache, { recursive: true, force: true });
  }
});
