import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
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

test('the ort engine scores vocabulary chunks in its ONNX graphs (last chunk padded) and gives the TF.js instances, semantic maps and grounding, at three temperatures', async () => {
  const dir = join(repoRoot, 'models/default');
  const model = await loadModel(dir, { promptCache: false });
  const cache = await mkdtemp(join(tmpdir(), 'ape-chunk-graphs-'));
  try {
    const scene = await readImage(join(repoRoot, 'examples/scene-2.png'));
    // 2,500 distinct names: chunks of 1,024, 1,024 and 452 (padded to 1,024 on ONNX Runtime, to 512 on TF.js).
    const syllables = ['ka', 'lo', 'mi', 'ne', 'su', 'ta', 'ri', 'vo'];
    const made = Array.from(
      { length: 2500 - 11 },
      (_, i) => `${syllables[i % 8]}${syllables[(i >> 3) % 8]}${syllables[(i >> 6) % 8]}${syllables[(i >> 9) % 8]}`,
    );
    const options = {
      vocabulary: [...vocabulary(11), ...made],
      sentences: ['the red star'],
      threshold: 0.2,
      semanticThreshold: 0.1,
      promptChunk: 1024,
    };
    assert.equal(new Set(options.vocabulary).size, 2500);
    // The second fixed temperature scores each chunk again; 1 / 0.01 is past the fixed shift (TF.js's log-sum-exp).
    const variants = [{}, { semanticTemperature: 0.03, semanticBackground: 0.05 }, { semanticTemperature: 0.01 }];
    const tfjs = (await model.predictVariantsOnEngine([scene], options, variants)).map((v) => v[0]!);

    const source = { dir, files: [join(dir, 'config.json'), join(dir, 'model.safetensors')] };
    const messages: string[] = [];
    const engine = new OrtEngine(model, source, { cacheDir: cache, onExport: (m) => messages.push(m) });
    model.setInferenceRunner(engine);
    const ort = (await model.predictVariantsOnEngine([scene], options, variants)).map((v) => v[0]!);
    const scorer = await engine.promptScorer(100);
    assert.deepEqual(scorer.totals.runs, 3 + 3 * 2, 'three chunks, normalised once, scored at two fixed temperatures');
    // The list again: its unit rows are kept (no normalising, no lookups), the results the same to the bit.
    assert.deepEqual(
      (await model.predictVariantsOnEngine([scene], options, variants)).map((v) => v[0]!),
      ort,
    );
    assert.deepEqual(scorer.totals.runs, 9 + 3 * 2, 'the same three chunks scored, none normalised');
    assert.ok(
      messages.some((m) => /^exporting tiny's vocabulary scoring to ONNX \(scores-q100-d128-w256\.1024\.4096/.test(m)),
    );
    assert.ok((await readdir(join(cache, 'scores-q100-d128-w256.1024.4096'))).includes('scores-1024.onnx'));

    variants.forEach((_, v) => {
      const [a, b] = [ort[v]!, tfjs[v]!];
      assert.ok(b.instances.length > 0, `variant ${v}: instances to compare`);
      assert.ok(
        b.instances.some((i) => i.promptIndex >= 2048),
        `variant ${v}: instances from the last chunk`,
      );
      assert.deepEqual(
        a.instances.map((i) => [i.prompt, i.query, i.mask]),
        b.instances.map((i) => [i.prompt, i.query, i.mask]),
        `variant ${v}`,
      );
      a.instances.forEach((inst, k) => {
        const want = b.instances[k]!.score;
        assert.ok(Math.abs(inst.score - want) <= 1e-5 * want, `variant ${v}: score ${inst.score} vs ${want}`);
      });
      assert.ok(new Set(b.semantic!.labels).size > 2, `variant ${v}: several labels`);
      assert.deepEqual(a.semantic!.labels, b.semantic!.labels, `variant ${v}: semantic labels`);
      assert.deepEqual(
        a.grounding.map((g) => [g.query, g.mask]),
        b.grounding.map((g) => [g.query, g.mask]),
      );
    });
    await engine.release();
  } finally {
    model.setInferenceRunner(null);
    model.dispose();
    await rm(cache, { recursive: true, force: true });
  }
});
