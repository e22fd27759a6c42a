import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/engine.js';
import { VisionLanguageAlign } from '../../src/modeling/heads/vision-language-align.js';
import {
  type PromptChunkJob,
  type PromptChunkScorer,
  type PromptChunkValues,
  SEMANTIC_BLOCK,
} from '../../src/modeling/prompt-chunk-scores.js';
import { tfjsPromptScorer } from '../../src/modeling/tfjs-prompt-scorer.js';
import {
  exportPromptScorer,
  PROMPT_SCORE_MANIFEST_FILE,
  promptScoreExportKey,
  type PromptScoreShape,
} from '../../src/onnx/prompt-score-export.js';
import {
  loadCachedPromptScorer,
  loadPromptScoreExport,
  writePromptScoreExport,
} from '../../src/onnx/prompt-score-files.js';
import type { OrtPromptScorer } from '../../src/onnx/ort-prompt-scorer.js';
import { OPSET } from '../../src/onnx/kernel-ops.js';
import { Rng } from '../../src/util/random.js';
import { relativeError } from './relative-error.js';

await initEngine();

const Q = 7;
const D = 16;
const DL = 8;

/** A classifier with random weights and language biases, and the query keys of random queries. */
function headAndKeys(): { head: VisionLanguageAlign; keys: Float32Array; offsets: Float32Array } {
  const rng = new Rng(3);
  const head = new VisionLanguageAlign(D, DL, rng);
  head.logScale.assign(tf.tensor1d([-0.7]));
  head.biasLang.assign(tf.randomNormal([DL], 0, 0.5, 'float32', 4));
  head.bias0.assign(tf.tensor1d([0.2]));
  const queries = tf.randomNormal([Q, D], 0, 1, 'float32', 5) as tf.Tensor2D;
  const k = head.queryKeys(queries);
  const keys = k.keys.dataSync() as Float32Array;
  const offsets = k.offsets.dataSync() as Float32Array;
  tf.dispose([queries, k.keys, k.offsets]);
  return { head, keys, offsets };
}

/** Prompt rows: `count` random vectors (one all zero), then `width - count` rows of `pad`. */
function promptRows(count: number, width: number, pad: (i: number) => number): Float32Array {
  let seed = 11;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648 - 0.5;
  };
  const rows = new Float32Array(width * DL);
  for (let i = 0; i < count * DL; i++) rows[i] = i < DL ? 0 : rand() * 4;
  for (let i = count * DL; i < width * DL; i++) rows[i] = pad(i);
  return rows;
}

/** A chunk as the test makes it: prompt vectors before their normalisation. */
type RawChunkJob = Omit<PromptChunkJob, 'unitPrompts'> & { prompts: Float32Array };

/** A scorer's answer for a raw chunk: its rows normalised on the scorer, then scored. */
async function scoreRaw(scorer: PromptChunkScorer, job: RawChunkJob): Promise<PromptChunkValues> {
  const { prompts, ...rest } = job;
  return scorer.score({ ...rest, unitPrompts: await scorer.normalize({ prompts, width: job.width }) });
}

/** scorePromptChunk's outputs (after the normalisation) on the chunk's own columns, in float64 from the definitions. */
function reference(job: RawChunkJob): PromptChunkValues {
  const { keys, offsets, prompts, count, inverseTemperature, prior } = job;
  const scores = new Float32Array(Q * count);
  const shifted = new Float64Array(Q * count);
  for (let c = 0; c < count; c++) {
    let norm = 0;
    for (let k = 0; k < DL; k++) norm += prompts[c * DL + k]! ** 2;
    norm = Math.sqrt(Math.max(norm, 1e-24));
    for (let q = 0; q < Q; q++) {
      let dot = 0;
      for (let k = 0; k < DL; k++) dot += keys[q * DL + k]! * (prompts[c * DL + k]! / norm);
      const logit = Math.min(Math.max(dot + offsets[q]!, -50000), 50000);
      const s = 1 / (1 + Math.exp(-logit));
      scores[q * count + c] = s;
      shifted[q * count + c] = Math.exp((s - 1) * inverseTemperature);
    }
  }
  const blocks = Math.ceil(count / SEMANTIC_BLOCK);
  const blockSums = new Float32Array(Q * blocks);
  const total = Float64Array.from(prior);
  for (let q = 0; q < Q; q++)
    for (let c = 0; c < count; c++) {
      blockSums[q * blocks + Math.floor(c / SEMANTIC_BLOCK)]! += shifted[q * count + c]!;
      total[q]! += shifted[q * count + c]!;
    }
  const bound = new Float32Array(count);
  const best = new Float32Array(count).fill(-Infinity);
  for (let c = 0; c < count; c++)
    for (let q = 0; q < Q; q++) {
      bound[c]! += shifted[q * count + c]! / total[q]!;
      best[c] = Math.max(best[c]!, scores[q * count + c]!);
    }
  return { scores, best, blockSums, bound };
}

/** The chunk's own columns of a scorer's outputs at `width`. */
function own(values: PromptChunkValues, width: number, count: number): PromptChunkValues {
  const blocks = Math.ceil(count / SEMANTIC_BLOCK);
  const cut = (a: Float32Array, stride: number, n: number) =>
    Float32Array.from({ length: Q * n }, (_, i) => a[Math.floor(i / n) * stride + (i % n)]!);
  return {
    scores: cut(values.scores, width, count),
    best: values.best.slice(0, count),
    blockSums: cut(values.blockSums, width / SEMANTIC_BLOCK, blocks),
    bound: values.bound.slice(0, count),
  };
}

function assertClose(a: PromptChunkValues, b: PromptChunkValues, tolerance: number, what: string): void {
  for (const key of ['scores', 'best', 'blockSums', 'bound'] as const) {
    const e = relativeError(a[key], b[key]);
    assert.ok(e <= tolerance, `${what}: ${key} differs by ${e} relative`);
  }
}

test('the chunk scoring graph on ONNX Runtime gives the TF.js scores and semantic statistics (and a float64 reference), the last chunk padded; padding never changes a result', async () => {
  const { head, keys, offsets } = headAndKeys();
  const shape: PromptScoreShape = { queries: Q, dim: DL, widths: [256, 1024] };
  const cache = await mkdtemp(join(tmpdir(), 'ape-prompt-scores-'));
  let scorer: OrtPromptScorer | null = null;
  try {
    const exported = exportPromptScorer(head, shape, { name: 'test', hash: 'h' });
    assert.deepEqual(
      exported.manifest.graphs.map((g) => [g.kind, g.width, g.file]),
      [
        ['normalize', 256, 'normalize-256.onnx'],
        ['scores', 256, 'scores-256.onnx'],
        ['normalize', 1024, 'normalize-1024.onnx'],
        ['scores', 1024, 'scores-1024.onnx'],
      ],
    );
    // No weights: every value a graph reads is one of its inputs or a small constant.
    assert.ok(exported.files.every((f) => f.length < 8000));
    await writePromptScoreExport(cache, exported);
    scorer = await loadPromptScoreExport(cache, { threads: 1 });
    assert.equal(scorer.maxWidth, 1024);
    assert.equal(scorer.width(14), 256);
    assert.equal(scorer.width(300), 1024);
    assert.throws(() => scorer!.width(1025), /a chunk of 1025 prompts is wider than every graph \(1024\)/);

    const tfjs = tfjsPromptScorer(head);
    assert.equal(tfjs.width(300), 512);
    for (const [count, inverseTemperature, priorScale] of [
      [300, 1 / 0.06, 0], // the first chunk: no columns before it
      [1024, 2, 40], // a full chunk after others (a prior per query)
      [14, 60, 3], // a short vocabulary at the largest fixed shift
    ] as const) {
      const prior = Float32Array.from({ length: Q }, (_, q) => priorScale * (q + 1));
      const job = (width: number, pad: (i: number) => number): RawChunkJob => ({
        keys,
        offsets,
        prompts: promptRows(count, width, pad),
        count,
        width,
        inverseTemperature,
        prior,
      });
      const ortWidth = scorer.width(count);
      const zeroPadded = await scoreRaw(
        scorer,
        job(ortWidth, () => 0),
      );
      const ortOwn = own(zeroPadded, ortWidth, count);
      const tfjsWidth = tfjs.width(count);
      const tfjsOwn = own(
        await scoreRaw(
          tfjs,
          job(tfjsWidth, () => 0),
        ),
        tfjsWidth,
        count,
      );
      const want = reference(job(count, () => 0));
      assertClose(ortOwn, tfjsOwn, 1e-5, `${count} prompts: ONNX Runtime vs TF.js`);
      assertClose(ortOwn, want, 1e-5, `${count} prompts: ONNX Runtime vs float64`);
      assertClose(tfjsOwn, want, 1e-5, `${count} prompts: TF.js vs float64`);
      assert.ok(want.scores.some((s) => s > 0.5) && want.scores.some((s) => s < 0.5), 'scores on both sides of 0.5');
      // Padding rows of any values (huge, negative) leave every output of the chunk's columns as it was, to the bit.
      if (count < ortWidth) {
        const garbage = await scoreRaw(
          scorer,
          job(ortWidth, (i) => (i % 3) * 1e4 - 7),
        );
        assert.deepEqual(own(garbage, ortWidth, count), ortOwn, `${count} prompts: padding values`);
        const tfjsGarbage = await scoreRaw(
          tfjs,
          job(tfjsWidth, (i) => (i % 5) * -3e3),
        );
        assert.deepEqual(own(tfjsGarbage, tfjsWidth, count), tfjsOwn, `${count} prompts: TF.js padding values`);
      }
    }
    await assert.rejects(
      scorer.score({
        keys,
        offsets,
        unitPrompts: new Float32Array(100),
        count: 10,
        width: 256,
        inverseTemperature: 1,
        prior: new Float32Array(Q),
      }),
      /'unitPrompts' has 100 values, the graph takes 2048/,
    );
    await assert.rejects(
      scorer.normalize({ prompts: new Float32Array(100), width: 256 }),
      /'prompts' has 100 values, the graph takes 2048/,
    );
    await assert.rejects(
      scorer.score({
        keys,
        offsets,
        unitPrompts: new Float32Array(512 * DL),
        count: 10,
        width: 512,
        inverseTemperature: 1,
        prior: new Float32Array(Q),
      }),
      /no scores graph for chunks of 512 prompts/,
    );
  } finally {
    await scorer?.release();
    head.dispose();
    await rm(cache, { recursive: true, force: true });
  }
});

test('a cached prompt-score export is reused; one from other weights, another opset or widths, a truncated graph or a manifest without an output is made again', async () => {
  const { head } = headAndKeys();
  const cache = await mkdtemp(join(tmpdir(), 'ape-prompt-score-cache-'));
  const shape: PromptScoreShape = { queries: Q, dim: DL, widths: [256, 512] };
  const dir = join(cache, promptScoreExportKey(shape));
  const messages: string[] = [];
  let made = 0;
  const load = (hash: string, s: PromptScoreShape = shape) =>
    loadCachedPromptScorer({
      dirs: [dir],
      hash,
      shape: s,
      make: () => {
        made++;
        return exportPromptScorer(head, s, { name: 'test', hash });
      },
      threads: 1,
      report: (m) => messages.push(m),
    });
  const use = async (scorer: OrtPromptScorer) => {
    assert.deepEqual(scorer.manifest.shape.widths, shape.widths);
    await scorer.release();
  };
  const why = () => messages.filter((m) => m.endsWith('making it again')).at(-1) ?? '';
  try {
    assert.equal(promptScoreExportKey(shape), 'scores-q7-d8-w256.512');
    await use(await load('h1'));
    assert.equal(made, 1);
    assert.deepEqual((await readdir(dir)).sort(), [
      'normalize-256.onnx',
      'normalize-512.onnx',
      PROMPT_SCORE_MANIFEST_FILE,
      'scores-256.onnx',
      'scores-512.onnx',
    ]);
    await use(await load('h1'));
    assert.equal(made, 1);
    await use(await load('h2'));
    assert.match(why(), /was made from other weights \(model hash h1, these are h2\); making it again$/);
    const manifestPath = join(dir, PROMPT_SCORE_MANIFEST_FILE);
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
    await writeFile(manifestPath, JSON.stringify({ ...manifest, opset: OPSET - 1 }));
    await use(await load('h2'));
    assert.match(why(), new RegExp(`has opset ${OPSET - 1}; this exporter writes opset ${OPSET}; making it again$`));
    await writeFile(manifestPath, JSON.stringify({ ...manifest, shape: { ...shape, widths: [256, 1024] } }));
    await use(await load('h2'));
    assert.match(why(), /was made for scores-q7-d8-w256\.1024, not scores-q7-d8-w256\.512; making it again$/);
    await truncate(join(dir, 'scores-512.onnx'), 100);
    await use(await load('h2'));
    assert.match(
      why(),
      /is unusable \(OrtPromptScorer: .*scores-512\.onnx has 100 bytes, the export wrote \d+; export again\); making it again$/,
    );
    const current = JSON.parse(await readFile(manifestPath, 'utf8'));
    delete current.graphs[3].outputs.best;
    await writeFile(manifestPath, JSON.stringify(current));
    await use(await load('h2'));
    assert.match(
      why(),
      /is unusable \(.*no scores graph for chunks of 512 prompts with outputs scores, best, blockSums, bound\)/,
    );
    // An export of the first format (its scoring graphs normalised the prompts themselves).
    const second = JSON.parse(await readFile(manifestPath, 'utf8'));
    await writeFile(manifestPath, JSON.stringify({ ...second, version: 1 }));
    await use(await load('h2'));
    assert.match(why(), /has format version 1; this exporter writes version 2; making it again$/);
    assert.equal(made, 7);
  } finally {
    head.dispose();
    await rm(cache, { recursive: true, force: true });
  }
});
