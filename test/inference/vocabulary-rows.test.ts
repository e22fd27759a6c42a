import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/engine.js';
import { VisionLanguageAlign } from '../../src/modeling/heads/vision-language-align.js';
import { type PromptChunkScorer, runScorerAsync } from '../../src/modeling/prompt-chunk-scores.js';
import { tfjsPromptScorer } from '../../src/modeling/tfjs-prompt-scorer.js';
import { exportPromptScorer } from '../../src/onnx/prompt-score-export.js';
import { loadPromptScoreExport, writePromptScoreExport } from '../../src/onnx/prompt-score-files.js';
import type { OrtPromptScorer } from '../../src/onnx/ort-prompt-scorer.js';
import { PromptEmbeddingCache } from '../../src/text/prompt-embeddings.js';
import { ClipTextEncoder } from '../../src/text/clip-text-transformer.js';
import { WordTokenizer } from '../../src/text/word-tokenizer.js';
import { VocabularyUnitRows } from '../../src/inference/vocabulary-rows.js';
import { loadModel } from '../../src/inference/model-files.js';
import { readImage } from '../../src/io/image-node.js';
import { Rng } from '../../src/util/random.js';
import { repoRoot } from '../cli/ape-cli.js';

await initEngine();

const DL = 12;

function textSide(maxEntries: number): PromptEmbeddingCache {
  const enc = new ClipTextEncoder(
    { vocabSize: 64, contextLength: 8, width: 16, heads: 2, layers: 1, mlpRatio: 4, embedDim: DL, layerNormEps: 1e-5 },
    new Rng(1),
  );
  return new PromptEmbeddingCache(enc, WordTokenizer.hashing(64, 8), 'eot', 64, maxEntries);
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `w${i % 37} v${Math.floor(i / 37)}`);

/** Each chunk's unit rows from `rows` (its own rows only, copied), `size` prompts per chunk. */
async function chunks(rows: VocabularyUnitRows, scorer: PromptChunkScorer, total: number, size: number) {
  const out: Float32Array[] = [];
  for (let start = 0; start < total; start += size) {
    const count = Math.min(size, total - start);
    const width = scorer.width(count);
    const unit = await runScorerAsync(rows.chunk(start, count, width), scorer);
    assert.equal(unit.length, width * DL);
    assert.ok(
      unit.subarray(count * DL).every((v) => v === 0),
      'padding rows are zero',
    );
    out.push(unit.slice(0, count * DL));
  }
  return out;
}

/** The per-name path: each chunk's vectors from the cache, normalised by the scorer at its width. */
async function direct(cache: PromptEmbeddingCache, scorer: PromptChunkScorer, vocabulary: string[], size: number) {
  const out: Float32Array[] = [];
  for (let start = 0; start < vocabulary.length; start += size) {
    const count = Math.min(size, vocabulary.length - start);
    const width = scorer.width(count);
    const prompts = new Float32Array(width * DL);
    cache.sentenceRows(vocabulary.slice(start, start + count), prompts);
    out.push((await scorer.normalize({ prompts, width })).slice(0, count * DL));
  }
  return out;
}

const joined = (parts: Float32Array[]) => Float32Array.from(parts.flatMap((p) => Array.from(p)));

test("a vocabulary's unit rows: kept once made, equal to the bit to its per-name vectors normalised chunk by chunk at any width, on TF.js and on ONNX Runtime; a list longer than the memory is normalised every time", async () => {
  const head = new VisionLanguageAlign(16, DL, new Rng(3));
  const dir = await mkdtemp(join(tmpdir(), 'ape-vocabulary-rows-'));
  let ort: OrtPromptScorer | null = null;
  try {
    await writePromptScoreExport(
      dir,
      exportPromptScorer(head, { queries: 7, dim: DL, widths: [256, 512] }, { name: 't', hash: 'h' }),
    );
    ort = await loadPromptScoreExport(dir, { threads: 1 });
    const vocabulary = names(600);
    for (const scorer of [tfjsPromptScorer(head), ort]) {
      const cache = textSide(700);
      const made = new VocabularyUnitRows(cache, vocabulary, scorer, DL);
      assert.equal(made.ready, false);
      // First pass: gathered and normalised in chunks of 512 (the last one, of 88, padded).
      const first = await chunks(made, scorer, vocabulary.length, 512);
      assert.equal(made.ready, true);
      const kept = cache.listRows(vocabulary, scorer.rowsKey);
      assert.ok(kept);
      assert.deepEqual(kept, joined(first));
      // Unit rows, from vectors that are not.
      for (const r of [0, 301, 599]) {
        const norm = Math.hypot(...kept.subarray(r * DL, (r + 1) * DL));
        assert.ok(Math.abs(norm - 1) < 1e-5, `${scorer.rowsKey}: row ${r} has norm ${norm}`);
      }
      // The per-name path at other widths (256) gives the same bits.
      assert.deepEqual(joined(await direct(cache, scorer, vocabulary, 256)), kept);
      // A new call finds the list kept: its chunks (any size) are slices of it, padded with zeros.
      const again = new VocabularyUnitRows(cache, vocabulary, scorer, DL);
      assert.equal(again.ready, true);
      assert.deepEqual(joined(await chunks(again, scorer, vocabulary.length, 256)), kept);
      // Another engine's scorer does not take these rows (its arithmetic may differ in the last bits).
      assert.equal(cache.listRows(vocabulary, `${scorer.rowsKey}-other`), undefined);

      // More names than the memory holds (500): normalised chunk by chunk, every time, the same bits.
      const small = textSide(500);
      const streamed = new VocabularyUnitRows(small, vocabulary, scorer, DL);
      assert.deepEqual(joined(await chunks(streamed, scorer, vocabulary.length, 512)), kept);
      assert.equal(streamed.ready, false);
      assert.equal(small.listRows(vocabulary, scorer.rowsKey), undefined);
    }
    assert.notEqual(tfjsPromptScorer(head).rowsKey, ort.rowsKey);
  } finally {
    await ort?.release();
    head.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});

test('predict after the text tower changed (a training step, on TF.js: the engine that trains) scores the new vectors, not the unit rows kept from the old ones', async () => {
  const dir = join(repoRoot, 'models/default');
  const scene = await readImage(join(repoRoot, 'examples/scene-2.png'));
  const options = { vocabulary: names(300), threshold: 0.15 };
  const open = () => loadModel(dir, { engine: 'tfjs', promptCache: false });
  // What a step would do to the (trainable) text tower of the shipped model.
  const step = (model: Awaited<ReturnType<typeof open>>) => {
    const [, weight] = [...model.language.namedParameters()].find(([name]) => name.endsWith('weight'))!;
    weight.assign(tf.add(weight, tf.randomNormal(weight.shape, 0, 0.05, 'float32', 7)));
  };
  const model = await open();
  const fresh = await open();
  try {
    const before = await model.predict(scene, options);
    assert.deepEqual(await model.predict(scene, options), before, 'the kept rows give the same results');
    step(model);
    const after = await model.predict(scene, options);
    step(fresh);
    assert.deepEqual(after, await fresh.predict(scene, options), 'as a model that never kept the old rows');
    assert.notDeepEqual(
      after.instances.map((i) => [i.prompt, i.score]),
      before.instances.map((i) => [i.prompt, i.score]),
    );
  } finally {
    model.dispose();
    fresh.dispose();
  }
});
