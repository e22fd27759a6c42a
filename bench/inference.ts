/**
 * `npm run bench -- inference [--model DIR] [--image PATH] [--runs 5] [--threads N] [--json OUT]`:
 * predict on both engines in one process, the TF.js wasm engine and ONNX Runtime (the network
 * exported from the same model; the export and session creation are timed apart as the first
 * call), with the prompts of `npm start` (14 names and a sentence). Per engine: the network's
 * parts (TF.js: backbone, prompts, encoder, decoder, heads; ONNX Runtime: segment 0 = backbone +
 * encoder + proposals, host = the proposal selection, segment 1 = decoder + heads), the network
 * and whole-predict times (min and median of the runs), and the process's peak RSS after each
 * engine's runs. The input size is the model's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../src/engine/engine.js';
import { loadModel } from '../src/inference/model-files.js';
import { prepareImages } from '../src/inference/preprocess.js';
import { readImage } from '../src/io/image-node.js';
import type { ForwardTimings } from '../src/modeling/ape-network.js';
import { OrtEngine } from '../src/onnx/ort-engine.js';
import { OrtNetwork } from '../src/onnx/ort-network.js';
import { exportKey, exportNetwork } from '../src/onnx/export-network.js';
import type { BenchResult } from './main.js';
import { option } from './options.js';

const VOCABULARY = 'circle,square,triangle,star,hexagon,ring,cross,heart,sky,grass,water,sand,wall,gravel'.split(',');
const SENTENCES = ['the red star'];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const summary = (xs: number[]) => ({ min: Math.round(Math.min(...xs)), median: Math.round(median(xs)) });
const rssMb = () => Math.round(process.memoryUsage().rss / 2 ** 20);

export async function run(argv: string[]): Promise<BenchResult> {
  const modelDir = option(argv, '--model', 'models/default');
  const imagePath = option(argv, '--image', 'examples/scene-2.png');
  const runs = Number(option(argv, '--runs', '5'));
  const threads = argv.includes('--threads') ? Number(option(argv, '--threads', '0')) : undefined;
  await initEngine({ backend: 'wasm' });
  const model = await loadModel(modelDir, { engine: 'tfjs' });
  const image = await readImage(imagePath);
  const size = model.config.input.size;
  const prompts = { vocabulary: VOCABULARY, sentences: SENTENCES };
  console.log(
    `${model.config.name} at ${size}x${size}, ${VOCABULARY.length} names + ${SENTENCES.length} sentence, ${runs} runs per engine (after one warm-up)`,
  );

  // TF.js: the forward's own phase timings, and whole predict calls.
  const tfjs = { parts: [] as ForwardTimings[], network: [] as number[], predict: [] as number[] };
  await model.predict(image, prompts);
  const { batch } = prepareImages([image], size);
  for (let i = 0; i < runs; i++) {
    const timings: ForwardTimings = {};
    const t0 = performance.now();
    model.forward(batch, prompts, { layers: 'last', masks: 'last', timings }).dispose();
    tfjs.network.push(performance.now() - t0);
    tfjs.parts.push(timings);
    const t1 = performance.now();
    await model.predict(image, prompts);
    tfjs.predict.push(performance.now() - t1);
  }
  const tfjsRss = rssMb();

  // ONNX Runtime: export + session creation once, then the network alone and whole predict calls.
  const cache = mkdtempSync(join(tmpdir(), 'ape-bench-ort-'));
  try {
    const source = { dir: modelDir, files: [join(modelDir, 'config.json'), join(modelDir, 'model.safetensors')] };
    let t0 = performance.now();
    // As predict exports it: the vocabulary is scored outside the graph, against its hidden queries.
    const shape = { size, vocabulary: 0, sentences: SENTENCES.length };
    const exported = exportNetwork(model, shape, 'bench');
    const exportMs = performance.now() - t0;
    const engine = new OrtEngine(model, source, { cacheDir: cache, threads });
    model.setInferenceRunner(engine);
    t0 = performance.now();
    await model.predict(image, prompts);
    const firstCallMs = performance.now() - t0;
    const net = await OrtNetwork.load(join(cache, exportKey({ ...shape, valid: [size, size] })), { threads });
    const sentences = model.encodePrompts(SENTENCES).dataSync() as Float32Array;
    const pixels = batch.images.dataSync() as Float32Array;
    const ort = { segments: [] as number[][], host: [] as number[], network: [] as number[], predict: [] as number[] };
    await net.run({ image: pixels, sentences });
    for (let i = 0; i < runs; i++) {
      const t1 = performance.now();
      const out = await net.run({ image: pixels, sentences });
      ort.network.push(performance.now() - t1);
      ort.segments.push(out.timings.segments);
      ort.host.push(out.timings.host);
      const t2 = performance.now();
      await model.predict(image, prompts);
      ort.predict.push(performance.now() - t2);
    }
    const ortRss = rssMb();
    await net.release();
    await engine.release();
    model.setInferenceRunner(null);
    batch.images.dispose();
    const exportBytes = exported.files.reduce((a, f) => a + f.length, 0);

    const phase = (k: keyof ForwardTimings) => summary(tfjs.parts.map((p) => p[k] ?? 0));
    const results = {
      model: modelDir,
      size,
      prompts: { vocabulary: VOCABULARY.length, sentences: SENTENCES.length },
      runs,
      threads: threads ?? 'default',
      tfjs: {
        parts: {
          backbone: phase('backbone'),
          prompts: phase('prompts'),
          encoder: phase('encoder'),
          decoder: phase('decoder'),
          heads: phase('heads'),
        },
        network: summary(tfjs.network),
        predict: summary(tfjs.predict),
        rssMb: tfjsRss,
      },
      ort: {
        exportMs: Math.round(exportMs),
        exportMb: Math.round(exportBytes / 1e5) / 10,
        firstCallMs: Math.round(firstCallMs),
        parts: {
          segment0: summary(ort.segments.map((s) => s[0]!)),
          host: summary(ort.host),
          segment1: summary(ort.segments.map((s) => s[1]!)),
        },
        network: summary(ort.network),
        predict: summary(ort.predict),
        rssMb: ortRss,
      },
      ratio: {
        network: Math.round((median(ort.network) / median(tfjs.network)) * 100) / 100,
        predict: Math.round((median(ort.predict) / median(tfjs.predict)) * 100) / 100,
      },
    };
    const row = (
      name: string,
      r: { network: { min: number; median: number }; predict: { min: number; median: number } },
    ) =>
      `${name.padEnd(6)} network ${r.network.median} ms (min ${r.network.min})  predict ${r.predict.median} ms (min ${r.predict.min})`;
    console.log(`tfjs parts (median ms): ${JSON.stringify(results.tfjs.parts)}`);
    console.log(
      `ort parts (median ms): ${JSON.stringify(results.ort.parts)}; export ${results.ort.exportMs} ms (${results.ort.exportMb} MB), first call ${results.ort.firstCallMs} ms`,
    );
    console.log(row('tfjs', results.tfjs));
    console.log(row('ort', results.ort));
    console.log(
      `ort / tfjs: network ${results.ratio.network}, predict ${results.ratio.predict}; peak RSS ${tfjsRss} MB after tfjs, ${ortRss} MB after ort`,
    );
    return { results };
  } finally {
    model.dispose();
    rmSync(cache, { recursive: true, force: true });
  }
}
