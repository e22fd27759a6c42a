import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/engine.js';
import { loadModel } from '../../src/inference/model-files.js';
import { readImage } from '../../src/io/image-node.js';
import { OrtEngine } from '../../src/onnx/ort-engine.js';
import { repoRoot } from '../cli/ape-cli.js';

await initEngine();

/** Distinct made-up names after the scene's own, so that the vocabulary spans several chunks. */
function vocabulary(n: number): string[] {
  const own = ['circle', 'square', 'triangle', 'star', 'hexagon', 'ring', 'cross', 'heart', 'sky', 'grass', 'water'];
  const syllables = ['ka', 'lo', 'mi', 'ne', 'su', 'ta', 'ri', 'vo'];
  const out = [...own];
  for (let i = 0; out.length < n; i++)
    out.push(`${syllables[i % 8]}${syllables[(i >> 3) % 8]}${syllables[(i >> 6) % 8]}`);
  return out;
}

test('predict with the vocabulary in chunks of 256 equals one chunk, on TF.js and on ONNX Runtime (tiny model, scene-2)', async () => {
  const dir = join(repoRoot, 'models/default');
  const model = await loadModel(dir);
  const cache = await mkdtemp(join(tmpdir(), 'ape-chunks-'));
  try {
    const scene = await readImage(join(repoRoot, 'examples/scene-2.png'));
    const options = {
      vocabulary: vocabulary(700),
      sentences: ['the red star'],
      threshold: 0.2,
      semanticThreshold: 0.1,
    };
    const tfjsWhole = await model.predict(scene, { ...options, promptChunk: 100_000 });
    const tfjsChunked = await model.predict(scene, { ...options, promptChunk: 256 });
    assert.deepEqual(tfjsChunked, tfjsWhole);
    assert.ok(tfjsWhole.instances.length > 0);
    assert.ok(tfjsWhole.semantic!.labels.some((l) => l >= 0));
    assert.equal(tfjsWhole.grounding.length, 1);

    const source = { dir, files: [join(dir, 'config.json'), join(dir, 'model.safetensors')] };
    const engine = new OrtEngine(model, source, { cacheDir: cache });
    model.setInferenceRunner(engine);
    const ortWhole = await model.predict(scene, { ...options, promptChunk: 100_000 });
    const ortChunked = await model.predict(scene, { ...options, promptChunk: 256 });
    assert.deepEqual(ortChunked, ortWhole);
    // And the engines agree (scores within 1e-4; same picks, masks and labels).
    assert.deepEqual(
      ortWhole.instances.map((i) => [i.prompt, i.query, i.mask]),
      tfjsWhole.instances.map((i) => [i.prompt, i.query, i.mask]),
    );
    ortWhole.instances.forEach((a, i) => assert.ok(Math.abs(a.score - tfjsWhole.instances[i]!.score) < 1e-4));
    assert.deepEqual(ortWhole.semantic!.labels, tfjsWhole.semantic!.labels);
    await engine.release();
  } finally {
    model.setInferenceRunner(null);
    model.dispose();
    await rm(cache, { recursive: true, force: true });
  }
});
