/**
 * The model's thread: loads the model once, then answers predict jobs one at a time with the
 * JSON form of the prediction. Started by ModelHost; not meant to be run on its own.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initEngine, tf } from '../engine/engine.js';
import { readValues } from '../engine/read-values.js';
import { DEFAULT_ENGINE, loadModel, ortEngineFor } from '../inference/model-files.js';
import type { OrtEngine } from '../onnx/ort-engine.js';
import { DEFAULT_SEMANTIC_THRESHOLD } from '../inference/semantic-confidence.js';
import type { ApeModel } from '../inference/ape-model.js';
import { DEFAULT_SCORE_THRESHOLD } from '../inference/results.js';
import { predictLeakFree } from '../inference/predict-leak-free.js';
import { predictionToJson } from '../inference/prediction-json.js';
import type { ModelWorkerData } from './model-host.js';
import { exportKey, MANIFEST_FILE } from '../onnx/export-network.js';
import { TEXT_MANIFEST_FILE, textExportKey } from '../onnx/text-export.js';
import { RecentLists } from '../util/recent-lists.js';
import { progressFrom } from '../util/progress.js';
import { PROMPT_PROGRESS_FROM } from '../text/prompt-embeddings.js';
import type {
  EngineMemory,
  ExportFolderInfo,
  ExportRequest,
  WorkerExportJob,
  WorkerPredictJob,
  WorkerPromptsJob,
  WorkerReply,
  WorkerRequest,
} from './worker-protocol.js';

const port = parentPort;
if (!port) throw new Error('model-worker: must run as a worker thread');

function memory(): EngineMemory {
  const m = tf.memory();
  return { numTensors: m.numTensors, numBytes: m.numBytes };
}

const reply = (message: WorkerReply) => port.postMessage(message);

/** A job that failed: its error's message. */
const replyError = (id: number, error: unknown) =>
  reply({ type: 'error', id, message: error instanceof Error ? error.message : String(error), memory: memory() });

/**
 * The loaded model and its ONNX Runtime engine, which runs predict's network (unless the server
 * runs TF.js) and finds or makes the exports the page fetches; with TF.js it is made on the first
 * such request, so a TF.js server loads ONNX Runtime only when the page asks for an export.
 */
interface Loaded {
  model: ApeModel;
  ort: () => Promise<OrtEngine>;
}

async function start(): Promise<Loaded | null> {
  const { modelDir, inputSize, engine } = workerData as ModelWorkerData;
  try {
    const t0 = performance.now();
    await initEngine({ backend: 'wasm' });
    const model = await loadModel(modelDir, {
      engine: 'tfjs',
      ...(inputSize !== undefined ? { inputSize } : {}),
    });
    let ort: Promise<OrtEngine> | null = null;
    const ortEngine = () => {
      ort ??= ortEngineFor(model, modelDir, { onExport: (line) => reply({ type: 'note', line }) });
      return ort;
    };
    if ((engine ?? DEFAULT_ENGINE) === 'ort') model.setInferenceRunner(await ortEngine());
    reply({
      type: 'ready',
      info: {
        name: model.config.name,
        config: model.config,
        backend: tf.getBackend(),
        inferenceEngine: model.inferenceEngine,
        loadMs: Math.round(performance.now() - t0),
      },
      memory: memory(),
    });
    return { model, ort: ortEngine };
  } catch (error) {
    reply({ type: 'load-failed', message: error instanceof Error ? error.message : String(error) });
    return null;
  }
}

/** The export the job asks for, found in the cache or made now, as the HTTP thread serves it. */
async function exportFolderInfo(engine: OrtEngine, request: ExportRequest): Promise<ExportFolderInfo> {
  if (request.kind === 'text') {
    const { dir, manifest, files } = await engine.textExportFolder();
    const key = textExportKey(manifest.shape);
    return { key, dir, manifestFile: TEXT_MANIFEST_FILE, modelHash: manifest.model.hash, files: [...files] };
  }
  const { dir, manifest, files } = await engine.exportFolder(request.shape);
  const key = exportKey(request.shape);
  return { key, dir, manifestFile: MANIFEST_FILE, modelHash: manifest.model.hash, files: [...files] };
}

async function exportFolder(ort: () => Promise<OrtEngine>, job: WorkerExportJob): Promise<void> {
  try {
    const folder = await exportFolderInfo(await ort(), job.export);
    reply({ type: 'export-ready', id: job.id, folder, memory: memory() });
  } catch (error) {
    replyError(job.id, error);
  }
}

/** Prompt lists lately prepared (a known list costs one comparison, not a cache lookup per prompt). */
const prepared = new RecentLists<true>(4);

/**
 * Puts a request's prompts in the prompt cache before predict, encoding the new ones with a
 * progress line in the server's log (a first vocabulary of thousands takes a while).
 */
async function preparePrompts(model: ApeModel, texts: string[]): Promise<void> {
  if (prepared.get('', texts)) return;
  await model.cachePromptsOnEngine(
    texts,
    progressFrom(PROMPT_PROGRESS_FROM, {
      label: 'encoding prompts',
      unit: 'prompt',
      lines: (line) => reply({ type: 'note', line }),
    }),
  );
  prepared.set('', texts, true);
}

/** The vectors of a prompts job's texts, from the prompt cache and its store, the new ones encoded on the server's engine. */
async function encodeTexts(model: ApeModel, job: WorkerPromptsJob): Promise<void> {
  try {
    const before = model.promptCache.stats().encoded;
    await preparePrompts(model, job.texts);
    const vectors = readValues(() => model.encodePrompts(job.texts));
    const encoded = model.promptCache.stats().encoded - before;
    const dim = model.config.text.encoder.embedDim;
    reply({ type: 'vectors', id: job.id, vectors, dim, encoded, memory: memory() });
  } catch (error) {
    replyError(job.id, error);
  }
}

async function answer(model: ApeModel, job: WorkerPredictJob): Promise<void> {
  const t0 = performance.now();
  try {
    await preparePrompts(model, [...job.vocabulary, ...job.sentences]);
    const prediction = await predictLeakFree(
      model,
      { width: job.image.width, height: job.image.height, data: job.image.data },
      {
        vocabulary: job.vocabulary,
        sentences: job.sentences,
        threshold: job.threshold ?? DEFAULT_SCORE_THRESHOLD,
        semanticThreshold: job.semanticThreshold ?? DEFAULT_SEMANTIC_THRESHOLD,
      },
    );
    const json = predictionToJson(prediction);
    reply({ type: 'result', id: job.id, json, inferenceMs: performance.now() - t0, memory: memory() });
  } catch (error) {
    replyError(job.id, error);
  }
}

const loaded = await start();
if (loaded) {
  // One job at a time, in arrival order, also when a job awaits its engine.
  let chain = Promise.resolve();
  port.on('message', (job: WorkerRequest) => {
    chain = chain.then(() =>
      job.type === 'export'
        ? exportFolder(loaded.ort, job)
        : job.type === 'prompts'
          ? encodeTexts(loaded.model, job)
          : answer(loaded.model, job),
    );
  });
}
