/**
 * `npm run bench -- inference [--rows tiny-256,ape-ti-512,ape-ti-1024,ape-d-1024] [--runs N]
 * [--threads N] [--tfjs-1024] [--json OUT]`: predict on the TF.js wasm engine and on ONNX Runtime
 * (the network exported from the same model; the export and session creation are timed apart as
 * the first call), with the prompts of `npm start` (14 names and a sentence) on
 * examples/scene-2.png.
 *
 * Rows: the shipped tiny model at 256, and the released presets with random weights of the real
 * detector shapes (test/onnx/released-shapes.ts: a one-layer stand-in text tower of the real
 * output width; prompt encoding is not what is measured): ape-ti at 512 and 1024, ape-d at 1024
 * (ONNX Runtime only: it does not fit TF.js's 4 GB wasm heap). The TF.js ape-ti 1024 row takes
 * minutes per forward and runs only with --tfjs-1024; otherwise the documented figure is
 * reported as such.
 *
 * Each (row, engine) runs in its own child process, one after the other, so that its peak RSS is
 * its own. Per run: the network's parts (TF.js: backbone, prompts, encoder, decoder, heads; ONNX
 * Runtime, on an export cut after the backbone: backbone (with the neck), encoder = prompts +
 * fusion + encoder + proposals, host = the proposal selection, decoder = decoder + heads), the
 * post-processing (the same TypeScript on both engines), network and whole-predict times, and the
 * process's CPU time (all threads) in the network and in the whole predict. Runs: --runs (default
 * 5 after a warm-up) for tiny, 1 without warm-up for the large rows (a run takes minutes).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { initEngine } from '../src/engine/engine.js';
import { loadModel } from '../src/inference/model-files.js';
import { readImage } from '../src/io/image-node.js';
import { filesHash, writeNetworkExport } from '../src/onnx/export-files.js';
import { exportBytes, exportKey, exportNetwork } from '../src/onnx/export-network.js';
import { sentenceBucket } from '../src/modeling/sentence-buckets.js';
import { OrtEngine } from '../src/onnx/ort-engine.js';
import { releasedShapesNetwork } from '../test/onnx/released-shapes.js';
import type { BenchResult } from './main.js';
import { option } from './options.js';

const VOCABULARY = 'circle,square,triangle,star,hexagon,ring,cross,heart,sky,grass,water,sand,wall,gravel'.split(',');
const SENTENCES = ['the red star'];
const ROWS = ['tiny-256', 'ape-ti-512', 'ape-ti-1024', 'ape-d-1024'] as const;
type Row = (typeof ROWS)[number];
type Engine = 'tfjs' | 'ort';

/** docs/released-weights.md: ape-ti forward at 1024 on TF.js wasm (random weights, quiet machine). */
const TFJS_APE_TI_1024_DOCUMENTED_MS = 181_000;

const here = fileURLToPath(new URL('.', import.meta.url));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const summary = (xs: number[]) => ({ min: Math.round(Math.min(...xs)), median: Math.round(median(xs)) });

interface EngineResult {
  engine: Engine;
  runs: number;
  parts: Record<string, { min: number; median: number }>;
  network: { min: number; median: number };
  postprocess: { min: number; median: number };
  predict: { min: number; median: number };
  /**
   * CPU time of the process (all threads) during each predict and during its network forward (the
   * TF.js forward, or the ONNX Runtime runner's segments and host step): on a loaded machine the
   * wall times say how much of the cores a run got, these what it needed.
   */
  predictCpu: { min: number; median: number };
  networkCpu: { min: number; median: number };
  peakRssMb: number;
  exportMs?: number;
  exportMb?: number;
  firstCallMs?: number;
}

/** One (row, engine) in this process: the child's work. */
async function measure(row: Row, engine: Engine, runs: number, threads: number | undefined): Promise<EngineResult> {
  await initEngine({ backend: 'wasm' });
  const [, preset, sizeText] = /^(.*)-(\d+)$/.exec(row)!;
  const size = Number(sizeText);
  const model =
    preset === 'tiny'
      ? await loadModel('models/default', { engine: 'tfjs' })
      : releasedShapesNetwork(preset as 'ape-ti' | 'ape-d');
  model.config.input.size = size;
  const image = await readImage(join(here, '..', 'examples/scene-2.png'));
  const prompts = { vocabulary: VOCABULARY, sentences: SENTENCES };
  const cache = mkdtempSync(join(tmpdir(), 'ape-bench-ort-'));
  const out: Partial<EngineResult> = { engine, runs };
  let ort: OrtEngine | null = null;
  try {
    if (engine === 'ort') {
      // The export is keyed by the model's files: a released-shapes model has none, so its config stands in.
      const files = preset === 'tiny' ? ['models/default/config.json', 'models/default/model.safetensors'] : [];
      if (files.length === 0) {
        files.push(join(cache, 'config.json'));
        writeFileSync(files[0]!, JSON.stringify(model.config));
      }
      ort = new OrtEngine(model, { dir: cache, files }, { cacheDir: cache, threads });
      // The export timed on its own, into the engine's cache (the first predict then loads it).
      const shape = {
        size,
        // As predict exports it: the vocabulary is scored outside the graph, against its hidden queries.
        vocabulary: 0,
        sentences: sentenceBucket(SENTENCES.length),
      };
      const t0 = performance.now();
      // Cut after the backbone, so that its time and the encoder's are apart (the tests find the
      // cut graph's outputs equal to the uncut one's).
      const exported = exportNetwork(model, shape, await filesHash(files), { cutAfter: ['backbone'] });
      await writeNetworkExport(join(cache, exportKey(shape)), exported);
      out.exportMs = Math.round(performance.now() - t0);
      out.exportMb = Math.round(exportBytes(exported) / 1e5) / 10;
      model.setInferenceRunner(ort);
    }
    const t0 = performance.now();
    // tiny: a warm-up call; ort: the first call loads the export (session creation), timed apart,
    // except for ape-d, whose forward alone takes minutes: its one predict includes the session
    // creation, and its network time is the segments' and host step's own.
    const warm = preset === 'tiny' || (engine === 'ort' && row !== 'ape-d-1024');
    if (warm) await model.predict(image, prompts);
    if (engine === 'ort' && warm) out.firstCallMs = Math.round(performance.now() - t0);
    const parts: Record<string, number>[] = [];
    const network: number[] = [];
    const postprocess: number[] = [];
    const predict: number[] = [];
    const predictCpu: number[] = [];
    const networkCpu: number[] = [];
    // The network's CPU time: the forward (TF.js) or the runner's run (ORT), wrapped on this instance.
    let forwardCpu = 0;
    const cpuMs = (since: NodeJS.CpuUsage) => {
      const used = process.cpuUsage(since);
      return (used.user + used.system) / 1000;
    };
    if (ort) {
      const runner = ort;
      const run = runner.run.bind(runner);
      runner.run = async (...args) => {
        const cpu = process.cpuUsage();
        const out = await run(...args);
        forwardCpu += cpuMs(cpu);
        return out;
      };
    } else {
      const forward = model.forward.bind(model);
      model.forward = (...args) => {
        const cpu = process.cpuUsage();
        const out = forward(...args);
        forwardCpu += cpuMs(cpu);
        return out;
      };
    }
    for (let i = 0; i < runs; i++) {
      const timings: Record<string, number> = {};
      const cpu = process.cpuUsage();
      forwardCpu = 0;
      const t1 = performance.now();
      await model.predict(image, { ...prompts, timings });
      predict.push(performance.now() - t1);
      predictCpu.push(cpuMs(cpu));
      networkCpu.push(forwardCpu);
      const own = ort && !warm ? ort.lastTimings.segments.reduce((a, b) => a + b, ort.lastTimings.host) : null;
      network.push(own ?? model.lastTimings.network);
      postprocess.push(model.lastTimings.postprocess);
      if (ort) {
        const [backbone, encoder, decoder] = ort.lastTimings.segments;
        parts.push({ backbone: backbone!, encoder: encoder!, host: ort.lastTimings.host, decoder: decoder! });
      } else parts.push(timings);
    }
    const names = Object.keys(parts[0]!);
    out.parts = Object.fromEntries(names.map((k) => [k, summary(parts.map((p) => p[k] ?? 0))]));
    out.network = summary(network);
    out.postprocess = summary(postprocess);
    out.predict = summary(predict);
    out.predictCpu = summary(predictCpu);
    out.networkCpu = summary(networkCpu);
    out.peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
    return out as EngineResult;
  } finally {
    await ort?.release();
    model.dispose();
    rmSync(cache, { recursive: true, force: true });
  }
}

function child(row: Row, engine: Engine, runs: number, threads: number | undefined): EngineResult {
  const args = [
    '--import',
    'tsx',
    join(here, 'inference.ts'),
    '--child',
    row,
    engine,
    String(runs),
    String(threads ?? 0),
  ];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26, cwd: join(here, '..') });
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  if (r.status !== 0 || !last.startsWith('{'))
    throw new Error(
      `${row} on ${engine} failed (exit ${r.status}): ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`,
    );
  return JSON.parse(last) as EngineResult;
}

export async function run(argv: string[]): Promise<BenchResult> {
  const rows = option(argv, '--rows', ROWS.join(',')).split(',') as Row[];
  for (const r of rows) if (!ROWS.includes(r)) throw new Error(`inference: unknown row '${r}' (${ROWS.join(', ')})`);
  const tinyRuns = Number(option(argv, '--runs', '5'));
  const threads = argv.includes('--threads') ? Number(option(argv, '--threads', '0')) : undefined;
  console.log(
    `${VOCABULARY.length} names + ${SENTENCES.length} sentence on examples/scene-2.png; ONNX Runtime threads: ${threads ?? 'default (all cores)'}`,
  );
  const results: Record<string, unknown> = { threads: threads ?? 'default', rows: {} };
  const fmt = (r: EngineResult) =>
    `network ${r.network.median} ms (min ${r.network.min}), post-processing ${r.postprocess.median} ms, predict ${r.predict.median} ms (CPU: network ${r.networkCpu.median}, predict ${r.predictCpu.median} ms); parts ${Object.entries(
      r.parts,
    )
      .map(([k, v]) => `${k} ${v.median}`)
      .join(
        ', ',
      )}; peak RSS ${r.peakRssMb} MB${r.exportMs !== undefined ? `; export ${r.exportMs} ms (${r.exportMb} MB)` : ''}${r.firstCallMs !== undefined ? `, first call ${r.firstCallMs} ms` : ''}`;
  for (const row of rows) {
    const runs = row === 'tiny-256' ? tinyRuns : 1;
    const engines: Engine[] =
      row === 'ape-d-1024' || (row === 'ape-ti-1024' && !argv.includes('--tfjs-1024')) ? ['ort'] : ['tfjs', 'ort'];
    const entry: Record<string, unknown> = { runs };
    for (const engine of engines) {
      const started = new Date().toISOString();
      try {
        const r = child(row, engine, runs, threads);
        entry[engine] = { started, ...r };
        console.log(`${row} ${engine.padEnd(4)} ${fmt(r)}`);
      } catch (e) {
        entry[`${engine}Error`] = (e as Error).message;
        console.log(`${row} ${engine} failed: ${(e as Error).message}`);
      }
    }
    const tfjs = entry.tfjs as EngineResult | undefined;
    const ort = entry.ort as EngineResult | undefined;
    if (row === 'ape-ti-1024' && !tfjs) {
      entry.tfjsDocumented = {
        networkMs: TFJS_APE_TI_1024_DOCUMENTED_MS,
        source: 'docs/released-weights.md (quiet machine; not rerun: pass --tfjs-1024)',
      };
    }
    const tfjsNetwork = tfjs?.network.median ?? (row === 'ape-ti-1024' ? TFJS_APE_TI_1024_DOCUMENTED_MS : undefined);
    if (ort && tfjsNetwork) {
      entry.ratio = {
        network: Math.round((ort.network.median / tfjsNetwork) * 100) / 100,
        ...(tfjs ? { predict: Math.round((ort.predict.median / tfjs.predict.median) * 100) / 100 } : {}),
        ...(tfjs ? {} : { against: 'the documented TF.js figure' }),
      };
      console.log(`${row} ort / tfjs: ${JSON.stringify(entry.ratio)}`);
    }
    (results.rows as Record<string, unknown>)[row] = entry;
  }
  return { results };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--child');
  if (i >= 0) {
    const [row, engine, runs, threads] = process.argv.slice(i + 1);
    const r = await measure(row as Row, engine as Engine, Number(runs), Number(threads) || undefined);
    console.log(JSON.stringify(r));
  }
}
