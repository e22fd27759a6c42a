/**
 * `npm run bench -- prompts [--json PATH] [--runs N] [--max-baseline N]`: inference time of the
 * tiny preset on one 256x256 image as the number of prompts grows, APE's way (vocabulary prompts
 * kept out of the fusion, one vector per sentence) and with a word-level deep-fusion baseline
 * (every token of every prompt through the fusion, as GLIP / Grounding DINO do; the same model in
 * `fusion: 'word'` mode). Prompt embeddings are cached before timing; the one-time text-encoding
 * cost of each count is reported beside it. Times are the fastest of N runs (default 3) of a full
 * `predict` (instances + semantic, plus grounding for sentences), in milliseconds.
 */
import { parseArgs } from 'node:util';
import { cpus, loadavg } from 'node:os';
import { initEngine } from '../src/engine/engine.js';
import { createModel } from '../src/inference/create-model.js';
import type { ApeModel, PredictOptions } from '../src/inference/ape-model.js';
import type { RgbImage } from '../src/io/image-types.js';
import type { BenchResult } from './main.js';

const VOCAB_COUNTS = [1, 10, 100, 1000, 4000];
const SENTENCE_COUNTS = [1, 16, 128];

/** Distinct made-up category names ("mavoli", "teskaru", ...), deterministic. */
export function categoryNames(n: number): string[] {
  const syllables = ['ka', 'lo', 'mi', 'ne', 'su', 'ta', 'ri', 'vo', 'pe', 'da', 'go', 'hu', 'ze', 'bi', 'fa', 'qu', 'wy', 'xo', 'ja', 'ce'];
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
  const places = ['on the left', 'on the right', 'near the window', 'behind the table', 'in the middle', 'at the bottom', 'under the tree', 'next to the door'];
  return Array.from({ length: n }, (_, i) => `the ${colours[i % 8]} ${things[Math.floor(i / 8) % 8]} ${places[Math.floor(i / 64) % 8]}`);
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

function fastest(runs: number, f: () => void): number {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    f();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

/** One-time text cost (fresh cache), then the fastest of `runs` predicts with the cache warm. */
function measure(model: ApeModel, image: RgbImage, options: PredictOptions, runs: number): { ms: number; encodeMs: number; networkMs: number } {
  model.promptCache.clear();
  const texts = [...(options.vocabulary ?? []), ...(options.sentences ?? [])];
  const t0 = performance.now();
  if (options.fusion === 'word') model.promptCache.tokens(texts).tokens.dispose();
  else model.encodePrompts(texts).dispose();
  const encodeMs = performance.now() - t0;
  model.predictSync([image], options); // warm-up (kernels, shapes)
  let networkMs = Infinity;
  const ms = fastest(runs, () => {
    model.predictSync([image], options);
    networkMs = Math.min(networkMs, model.lastTimings.network);
  });
  return { ms: round(ms), encodeMs: round(encodeMs), networkMs: round(networkMs) };
}

const round = (x: number) => Math.round(x * 10) / 10;

export async function run(argv: string[]): Promise<BenchResult> {
  const { values } = parseArgs({
    args: argv,
    options: { json: { type: 'string' }, runs: { type: 'string', default: '3' }, 'max-baseline': { type: 'string', default: '4000' } },
    allowPositionals: false,
  });
  const runs = Number(values.runs);
  const maxBaseline = Number(values['max-baseline']);
  if (!(runs >= 1)) throw new Error(`--runs must be a positive number, got ${values.runs}`);
  await initEngine({ backend: 'wasm' });
  const model = await createModel('tiny', { seed: 0 });
  const image = testImage(model.config.input.size);
  const names = categoryNames(Math.max(...VOCAB_COUNTS));
  const phrases = sentences(Math.max(...SENTENCE_COUNTS));
  console.log(`tiny preset: ${model.parameterCount().toLocaleString('en-US')} parameters, input ${model.config.input.size}x${model.config.input.size}, ${model.config.transformer.proposals.numQueries} queries; fastest of ${runs} runs; load average ${loadavg()[0]!.toFixed(2)}`);

  const vocab: Record<string, number> = {};
  const sentenceTimes: Record<string, number> = {};
  const baselineVocab: Record<string, number> = {};
  const baselineSentences: Record<string, number> = {};
  const encoding = { vocab: {} as Record<string, number>, sentences: {} as Record<string, number>, baselineVocab: {} as Record<string, number>, baselineSentences: {} as Record<string, number> };
  const network = { vocab: {} as Record<string, number>, sentences: {} as Record<string, number>, baselineVocab: {} as Record<string, number>, baselineSentences: {} as Record<string, number> };
  const row = (label: string, n: number, r: { ms: number; encodeMs: number; networkMs: number }) =>
    console.log(`${label.padEnd(22)} ${String(n).padStart(5)} prompts: ${r.ms.toFixed(1).padStart(9)} ms  (network ${r.networkMs.toFixed(1)} ms; text encoding once ${r.encodeMs.toFixed(1)} ms)`);

  for (const n of VOCAB_COUNTS) {
    const r = measure(model, image, { vocabulary: names.slice(0, n) }, runs);
    vocab[n] = r.ms;
    encoding.vocab[n] = r.encodeMs;
    network.vocab[n] = r.networkMs;
    row('vocabulary (APE)', n, r);
  }
  for (const n of SENTENCE_COUNTS) {
    const r = measure(model, image, { sentences: phrases.slice(0, n) }, runs);
    sentenceTimes[n] = r.ms;
    encoding.sentences[n] = r.encodeMs;
    network.sentences[n] = r.networkMs;
    row('sentences (APE)', n, r);
  }
  for (const n of VOCAB_COUNTS.filter((c) => c <= maxBaseline)) {
    const r = measure(model, image, { vocabulary: names.slice(0, n), fusion: 'word' }, n >= 1000 ? 1 : runs);
    baselineVocab[n] = r.ms;
    encoding.baselineVocab[n] = r.encodeMs;
    network.baselineVocab[n] = r.networkMs;
    row('vocabulary (word-level)', n, r);
  }
  for (const n of SENTENCE_COUNTS) {
    const r = measure(model, image, { sentences: phrases.slice(0, n), fusion: 'word' }, runs);
    baselineSentences[n] = r.ms;
    encoding.baselineSentences[n] = r.encodeMs;
    network.baselineSentences[n] = r.networkMs;
    row('sentences (word-level)', n, r);
  }
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
      machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, loadAverage: round(loadavg()[0]!), node: process.version },
      runs,
    },
  };
}
