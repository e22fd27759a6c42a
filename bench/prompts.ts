/**
 * `npm run bench -- prompts [--json PATH] [--runs N] [--max-baseline N] [--scale-only] [--engines tfjs,ort]
 * [--encoding-only] [--encode-counts 10000,100000]`:
 * first, text encoding on each engine: the shipped model encodes N made-up names (default 10,000;
 * --encode-counts) and 1,000 sentences with empty caches (no on-disk prompt cache; the fastest of
 * --runs), on TF.js and on the text tower's ONNX export, after a warm-up on the scene's 14 names (which on ONNX Runtime makes
 * the export); `--encoding-only` stops there and keeps the other rows of bench/results/prompts.json.
 * Then prompt count at scale (`--scale-only` makes only these rows and keeps the others of the
 * file): the shipped model on examples/scene-2.png with 14, 10,000 and 100,000 names (the
 * scene's 14 and made-up ones) on each engine: the first encoding (empty on-disk prompt cache),
 * the read back from the disk cache by a fresh model (a restart), the
 * predict time with the vectors in memory (fastest of N) and the process's peak RSS so far; then,
 * per engine, 14 and 100,000 names predicted in turn on one model (the fastest of N each, and
 * their ratio: one count after another, a shifting load skews the rows' ratio).
 * Then (unless --scale-only) inference time of the
 * tiny preset on one 256x256 image as the number of prompts grows, APE's way (vocabulary prompts
 * kept out of the fusion, one vector per sentence) and with a word-level deep-fusion baseline
 * (every token of every prompt through the fusion, as GLIP / Grounding DINO do; the same model in
 * `fusion: 'word'` mode). Prompt embeddings are cached before timing; the one-time text-encoding
 * cost of each count is reported beside it. Times are the fastest of N rounds (default 3; each
 * round runs every count once, in turn) of a full `predict` (instances + semantic, plus grounding
 * for sentences), in milliseconds.
 */
import { parseArgs } from 'node:util';
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../src/inference/model-files.js';
import { readImage } from '../src/io/image-node.js';
import { initEngine } from '../src/engine/engine.js';
import { createModel } from '../src/inference/create-model.js';
import type { ApeModel, PredictOptions } from '../src/inference/ape-model.js';
import type { RgbImage } from '../src/io/image-types.js';
import type { BenchResult } from './main.js';

const VOCAB_COUNTS = [1, 10, 100, 1000, 4000];
const SENTENCE_COUNTS = [1, 16, 128];

/** Distinct made-up category names ("mavoli", "teskaru", ...), deterministic. */
export function categoryNames(n: number): string[] {
  const syllables = [
    'ka',
    'lo',
    'mi',
    'ne',
    'su',
    'ta',
    'ri',
    'vo',
    'pe',
    'da',
    'go',
    'hu',
    'ze',
    'bi',
    'fa',
    'qu',
    'wy',
    'xo',
    'ja',
    'ce',
  ];
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    let k = i + 400;
    let word = '';
    while (k > 0) {
      word += syllables[k % syllables.length];
      k = Math.floor(k / syllables.length);
    }
    out.push(word);
  }
  return out;
}

/** Distinct referring sentences of 5-8 words, deterministic. */
export function sentences(n: number): string[] {
  const colours = ['red', 'blue', 'green', 'small', 'large', 'striped', 'wooden', 'shiny'];
  const things = ['car', 'dog', 'cup', 'chair', 'person', 'kite', 'boat', 'lamp'];
  const places = [
    'on the left',
    'on the right',
    'near the window',
    'behind the table',
    'in the middle',
    'at the bottom',
    'under the tree',
    'next to the door',
  ];
  return Array.from(
    { length: n },
    (_, i) => `the ${colours[i % 8]} ${things[Math.floor(i / 8) % 8]} ${places[Math.floor(i / 64) % 8]}`,
  );
}

function testImage(size: number): RgbImage {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const o = (y * size + x) * 3;
      const inDisc = (x - 90) ** 2 + (y - 110) ** 2 < 50 ** 2;
      const inBox = x > 150 && x < 230 && y > 40 && y < 200;
      data[o] = inDisc ? 220 : inBox ? 40 : 120 + ((x * 7 + y * 3) % 40);
      data[o + 1] = inDisc ? 60 : inBox ? 180 : 130;
      data[o + 2] = inDisc ? 50 : inBox ? 70 : 140 + ((x + y) % 30);
    }
  }
  return { width: size, height: size, data };
}

/** One-time text cost of `texts` from an empty cache (sentence vectors, or token rows for the word-level mode). */
function encodingMs(model: ApeModel, texts: string[], word: boolean): number {
  model.promptCache.clear();
  const t0 = performance.now();
  if (word) model.promptCache.tokens(texts).tokens.dispose();
  else model.encodePrompts(texts).dispose();
  return performance.now() - t0;
}

const round = (x: number) => Math.round(x * 10) / 10;

const SCALE_COUNTS = [14, 10_000, 100_000];
const SCENE_NAMES = 'circle,square,triangle,star,hexagon,ring,cross,heart,sky,grass,water,sand,wall,gravel'.split(',');

interface ScaleRow {
  engine: string;
  names: number;
  /** Encoding every name with the text tower (empty caches). */
  firstEncodeMs: number | null;
  /** A fresh model reading every name's vector from the on-disk cache. */
  fromDiskMs: number;
  /** Fastest predict with the vectors in memory. */
  predictMs: number;
  alignmentMs: number;
  peakRssMb: number;
}

/**
 * The fewest and the most names predicted in turn on one model, `runs` times each (the fastest of
 * each): their ratio holds under a load that shifts from minute to minute, which the rows (one
 * count after another) do not.
 */
interface InterleavedRow {
  engine: string;
  names: number[];
  predictMs: number[];
  alignmentMs: number[];
  /** The network's part of the fastest predict (encoding prompts included), and its CPU time (all threads). */
  networkMs: number[];
  cpuMs: number[];
  /** Median predict of the runs. */
  medianMs: number[];
  ratio: number;
  medianRatio: number;
}

/**
 * The scale rows: per engine a fresh model over one on-disk prompt cache (the first engine fills
 * it), then the interleaved comparison of the smallest and largest count.
 */
async function scaleRows(
  engines: ('tfjs' | 'ort')[],
  runs: number,
): Promise<{ rows: ScaleRow[]; interleaved: InterleavedRow[] }> {
  const modelDir = 'models/default';
  const root = mkdtempSync(join(tmpdir(), 'ape-bench-prompts-'));
  const image = await readImage('examples/scene-2.png');
  const made = categoryNames(Math.max(...SCALE_COUNTS));
  const rows: ScaleRow[] = [];
  const interleaved: InterleavedRow[] = [];
  try {
    for (const engine of engines) {
      // One on-disk cache per count, filled by the first engine.
      const open = (n: number) =>
        loadModel(modelDir, {
          engine,
          promptCache: { dir: join(root, `prompts-${n}`) },
          ort: { cacheDir: join(root, 'onnx') },
        });
      for (const n of SCALE_COUNTS) {
        const vocabulary = [...SCENE_NAMES, ...made.slice(0, n - SCENE_NAMES.length)];
        let firstEncodeMs: number | null = null;
        let model = await open(n);
        if (engine === engines[0]) {
          const t0 = performance.now();
          model.encodePrompts(vocabulary).dispose();
          firstEncodeMs = round(performance.now() - t0);
          model.dispose();
          model = await open(n);
        }
        const t1 = performance.now();
        model.encodePrompts(vocabulary).dispose();
        const fromDiskMs = round(performance.now() - t1);
        await model.predict(image, { vocabulary, threshold: 0.3 }); // warm-up (and the ORT export)
        let best = { ms: Infinity, alignment: 0 };
        for (let r = 0; r < runs; r++) {
          const t2 = performance.now();
          await model.predict(image, { vocabulary, threshold: 0.3 });
          const ms = performance.now() - t2;
          if (ms < best.ms) best = { ms, alignment: model.lastTimings.alignment };
        }
        const row = {
          engine,
          names: n,
          firstEncodeMs,
          fromDiskMs,
          predictMs: round(best.ms),
          alignmentMs: round(best.alignment),
          peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
        };
        rows.push(row);
        console.log(
          `${engine.padEnd(5)} ${String(n).padStart(7)} names: predict ${row.predictMs} ms (alignment ${row.alignmentMs}), first encoding ${firstEncodeMs ?? '-'} ms, from disk ${fromDiskMs} ms, peak RSS ${row.peakRssMb} MB`,
        );
        model.dispose();
      }
      const counts = [Math.min(...SCALE_COUNTS), Math.max(...SCALE_COUNTS)];
      // The largest count's cache holds every name of the smaller ones (the scene's come first).
      const model = await open(counts[1]!);
      const lists = counts.map((n) => [...SCENE_NAMES, ...made.slice(0, n - SCENE_NAMES.length)]);
      model.encodePrompts(lists[1]!).dispose();
      const best = counts.map(() => ({ ms: Infinity, alignment: 0, network: 0, cpu: 0 }));
      const all = counts.map((): number[] => []);
      for (let r = -1; r < runs; r++)
        for (const [k, vocabulary] of lists.entries()) {
          const c0 = process.cpuUsage();
          const t0 = performance.now();
          await model.predict(image, { vocabulary, threshold: 0.3 });
          const ms = performance.now() - t0;
          const cpu = process.cpuUsage(c0);
          // Round -1 warms up.
          if (r < 0) continue;
          all[k]!.push(ms);
          if (ms < best[k]!.ms)
            best[k] = {
              ms,
              alignment: model.lastTimings.alignment,
              network: model.lastTimings.network,
              cpu: (cpu.user + cpu.system) / 1000,
            };
        }
      model.dispose();
      const median = all.map((list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]!);
      const row = {
        engine,
        names: counts,
        predictMs: best.map((b) => round(b.ms)),
        alignmentMs: best.map((b) => round(b.alignment)),
        networkMs: best.map((b) => round(b.network)),
        cpuMs: best.map((b) => round(b.cpu)),
        medianMs: median.map(round),
        ratio: Math.round((best[1]!.ms / best[0]!.ms) * 100) / 100,
        medianRatio: Math.round((median[1]! / median[0]!) * 100) / 100,
      };
      interleaved.push(row);
      console.log(
        `${engine.padEnd(5)} in turn: ${counts.map((n, k) => `${n} names ${row.predictMs[k]} ms (alignment ${row.alignmentMs[k]}, network ${row.networkMs[k]}, CPU ${row.cpuMs[k]}; median ${row.medianMs[k]})`).join(', ')}: ${row.ratio}x (medians ${row.medianRatio}x)`,
      );
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return { rows, interleaved };
}

interface EncodingRow {
  engine: string;
  prompts: 'names' | 'sentences';
  count: number;
  /** Tokenizing and encoding every prompt, empty caches (ms): the fastest of the runs, and each run. */
  ms: number;
  runsMs: number[];
  perPromptUs: number;
  /** The warm-up: 14 names, with the text tower's export (and its sessions) on ONNX Runtime. */
  warmUpMs: number;
}

/** Encoding `counts` names and 1,000 sentences from empty caches on each engine (a fresh model per engine), `runs` times. */
async function encodingRows(engines: ('tfjs' | 'ort')[], counts: number[], runs: number): Promise<EncodingRow[]> {
  const root = mkdtempSync(join(tmpdir(), 'ape-bench-encoding-'));
  const made = categoryNames(Math.max(...counts));
  const phrases = sentences(1000);
  const rows: EncodingRow[] = [];
  try {
    for (const engine of engines) {
      const model = await loadModel('models/default', {
        engine,
        promptCache: false,
        ort: { cacheDir: join(root, `onnx-${engine}`) },
      });
      try {
        const t0 = performance.now();
        (await model.encodePromptsOnEngine(SCENE_NAMES)).dispose();
        const warmUpMs = round(performance.now() - t0);
        const cases = [
          ...counts.map((n) => ({ prompts: 'names' as const, texts: made.slice(0, n) })),
          { prompts: 'sentences' as const, texts: phrases },
        ];
        for (const { prompts, texts } of cases) {
          const runsMs: number[] = [];
          for (let r = 0; r < runs; r++) {
            model.promptCache.clear();
            const t1 = performance.now();
            (await model.encodePromptsOnEngine(texts)).dispose();
            runsMs.push(round(performance.now() - t1));
          }
          const ms = Math.min(...runsMs);
          const row = {
            engine,
            prompts,
            count: texts.length,
            ms,
            runsMs,
            perPromptUs: round((ms * 1000) / texts.length),
            warmUpMs,
          };
          rows.push(row);
          console.log(
            `${engine.padEnd(5)} encodes ${String(texts.length).padStart(7)} ${prompts.padEnd(9)}: ${ms} ms (${row.perPromptUs} us each; runs ${runsMs.join(', ')} ms; warm-up with 14 names ${warmUpMs} ms)`,
          );
        }
      } finally {
        model.dispose();
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return rows;
}

/** bench/results/prompts.json as it is (or nothing), for a partial run that keeps the rows it does not make. */
function previousResults(): Record<string, unknown> {
  try {
    const {
      bench: _bench,
      date: _date,
      node: _node,
      ...rest
    } = JSON.parse(readFileSync('bench/results/prompts.json', 'utf8')) as Record<string, unknown>;
    return rest;
  } catch {
    return {};
  }
}

interface Timing {
  ms: number;
  networkMs: number;
  encodeMs: number;
}

/**
 * Each case's one-time text cost, then `rounds` rounds that run every case once in turn (so that
 * the machine's load shifts hit all counts alike), keeping each case's fastest predict.
 */
function series(model: ApeModel, image: RgbImage, cases: PredictOptions[], rounds: number): Timing[] {
  const texts = (o: PredictOptions) => [...(o.vocabulary ?? []), ...(o.sentences ?? [])];
  const encode = cases.map((o) => encodingMs(model, texts(o), o.fusion === 'word'));
  for (const o of cases) model.predictSync([image], o); // fills the cache; warms kernels and shapes
  const best = cases.map(() => ({ ms: Infinity, networkMs: Infinity }));
  for (let r = 0; r < rounds; r++) {
    cases.forEach((o, i) => {
      const t0 = performance.now();
      model.predictSync([image], o);
      const ms = performance.now() - t0;
      if (ms < best[i]!.ms) best[i] = { ms, networkMs: model.lastTimings.network };
    });
  }
  return best.map((b, i) => ({ ms: round(b.ms), networkMs: round(b.networkMs), encodeMs: round(encode[i]!) }));
}

export async function run(argv: string[]): Promise<BenchResult> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'string' },
      runs: { type: 'string', default: '3' },
      'max-baseline': { type: 'string', default: '4000' },
      'scale-only': { type: 'boolean', default: false },
      engines: { type: 'string', default: 'tfjs,ort' },
      'encoding-only': { type: 'boolean', default: false },
      'encode-counts': { type: 'string', default: '10000' },
    },
    allowPositionals: false,
  });
  const runs = Number(values.runs);
  const maxBaseline = Number(values['max-baseline']);
  if (!(runs >= 1)) throw new Error(`--runs must be a positive number, got ${values.runs}`);
  await initEngine({ backend: 'wasm' });
  const engines = values.engines.split(',').map((e) => {
    if (e !== 'tfjs' && e !== 'ort') throw new Error(`--engines: tfjs or ort, got '${e}'`);
    return e;
  });
  const encodeCounts = values['encode-counts'].split(',').map((c) => {
    const n = Number(c);
    if (!(Number.isInteger(n) && n > 0)) throw new Error(`--encode-counts: positive integers, got '${c}'`);
    return n;
  });
  const machineNow = () => ({
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    loadAverage: round(loadavg()[0]!),
    node: process.version,
  });
  if (values['encoding-only'] && values['scale-only'])
    throw new Error('--encoding-only and --scale-only each make one part; give one');
  let encodingRun = {};
  if (!values['scale-only']) {
    console.log(`text encoding (models/default, empty caches; load average ${loadavg()[0]!.toFixed(2)})`);
    encodingRun = {
      encoding: await encodingRows(engines, encodeCounts, runs),
      encodingDate: new Date().toISOString(),
      encodingMachine: machineNow(),
    };
  }
  if (values['encoding-only']) return { results: { ...previousResults(), ...encodingRun } };
  console.log(`prompt count at scale (models/default, scene-2.png; load average ${loadavg()[0]!.toFixed(2)})`);
  const { rows: scale, interleaved: scaleInterleaved } = await scaleRows(engines, runs);
  const machine = machineNow();
  if (values['scale-only'])
    return {
      results: {
        ...previousResults(),
        scale,
        scaleInterleaved,
        scaleDate: new Date().toISOString(),
        scaleMachine: machine,
        scaleRuns: runs,
      },
    };
  const model = await createModel('tiny', { seed: 0 });
  const image = testImage(model.config.input.size);
  const names = categoryNames(Math.max(...VOCAB_COUNTS));
  const phrases = sentences(Math.max(...SENTENCE_COUNTS));
  console.log(
    `tiny preset: ${model.parameterCount().toLocaleString('en-US')} parameters, input ${model.config.input.size}x${model.config.input.size}, ${model.config.transformer.proposals.numQueries} queries; fastest of ${runs} interleaved rounds; load average ${loadavg()[0]!.toFixed(2)}`,
  );

  const vocab: Record<string, number> = {};
  const sentenceTimes: Record<string, number> = {};
  const baselineVocab: Record<string, number> = {};
  const baselineSentences: Record<string, number> = {};
  const encoding = {
    vocab: {} as Record<string, number>,
    sentences: {} as Record<string, number>,
    baselineVocab: {} as Record<string, number>,
    baselineSentences: {} as Record<string, number>,
  };
  const network = {
    vocab: {} as Record<string, number>,
    sentences: {} as Record<string, number>,
    baselineVocab: {} as Record<string, number>,
    baselineSentences: {} as Record<string, number>,
  };

  const report = (
    label: string,
    counts: number[],
    timings: Timing[],
    into: Record<string, number>,
    enc: Record<string, number>,
    net: Record<string, number>,
  ) =>
    counts.forEach((n, i) => {
      const r = timings[i]!;
      into[n] = r.ms;
      enc[n] = r.encodeMs;
      net[n] = r.networkMs;
      console.log(
        `${label.padEnd(24)} ${String(n).padStart(5)} prompts: ${r.ms.toFixed(1).padStart(9)} ms  (network ${r.networkMs.toFixed(1)} ms; text encoding once ${r.encodeMs.toFixed(1)} ms)`,
      );
    });
  report(
    'vocabulary (APE)',
    VOCAB_COUNTS,
    series(
      model,
      image,
      VOCAB_COUNTS.map((n) => ({ vocabulary: names.slice(0, n) })),
      runs,
    ),
    vocab,
    encoding.vocab,
    network.vocab,
  );
  report(
    'sentences (APE)',
    SENTENCE_COUNTS,
    series(
      model,
      image,
      SENTENCE_COUNTS.map((n) => ({ sentences: phrases.slice(0, n) })),
      runs,
    ),
    sentenceTimes,
    encoding.sentences,
    network.sentences,
  );
  const baselineCounts = VOCAB_COUNTS.filter((c) => c <= maxBaseline);
  report(
    'vocabulary (word-level)',
    baselineCounts,
    series(
      model,
      image,
      baselineCounts.map((n) => ({ vocabulary: names.slice(0, n), fusion: 'word' as const })),
      runs,
    ),
    baselineVocab,
    encoding.baselineVocab,
    network.baselineVocab,
  );
  report(
    'sentences (word-level)',
    SENTENCE_COUNTS,
    series(
      model,
      image,
      SENTENCE_COUNTS.map((n) => ({ sentences: phrases.slice(0, n), fusion: 'word' as const })),
      runs,
    ),
    baselineSentences,
    encoding.baselineSentences,
    network.baselineSentences,
  );
  const ratio = round((vocab[4000]! / vocab[1]!) * 100) / 100;
  console.log(`4000 vs 1 vocabulary prompts: ${ratio}x (goal <= 1.3x)`);
  return {
    results: {
      vocab,
      sentences: sentenceTimes,
      baseline: { vocab: baselineVocab, sentences: baselineSentences },
      textEncodingMs: encoding,
      networkMs: network,
      vocab4000over1: ratio,
      scale,
      scaleInterleaved,
      machine,
      runs,
      ...encodingRun,
    },
  };
}
