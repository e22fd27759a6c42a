/**
 * The model's thread: loads the model once, then answers predict jobs one at a time with the
 * JSON form of the prediction. Started by ModelHost; not meant to be run on its own.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initEngine, tf } from '../engine/engine.js';
import { loadModel } from '../inference/model-files.js';
import { DEFAULT_SEMANTIC_THRESHOLD } from '../inference/semantic-confidence.js';
import type { ApeModel } from '../inference/ape-model.js';
import { DEFAULT_SCORE_THRESHOLD } from '../inference/results.js';
import { predictLeakFree } from '../inference/predict-leak-free.js';
import { predictionToJson } from '../inference/prediction-json.js';
import type { ModelWorkerData } from './model-host.js';
import type { EngineMemory, WorkerReply, WorkerRequest } from './worker-protocol.js';

const port = parentPort;
if (!port) throw new Error('model-worker: must run as a worker thread');

function memory(): EngineMemory {
  const m = tf.memory();
  return { numTensors: m.numTensors, numBytes: m.numBytes };
}

const reply = (message: WorkerReply) => port.postMessage(message);

async function start(): Promise<ApeModel | null> {
  const { modelDir, inputSize, engine } = workerData as ModelWorkerData;
  try {
    const t0 = performance.now();
    await initEngine({ backend: 'wasm' });
    const model = await loadModel(modelDir, {
      ...(engine !== undefined ? { engine } : {}),
      ort: { onExport: (line) => reply({ type: 'note', line }) },
      ...(inputSize !== undefined ? { inputSize } : {}),
    });
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
    return model;
  } catch (error) {
    reply({ type: 'load-failed', message: error instanceof Error ? error.message : String(error) });
    return null;
  }
}

async function answer(model: ApeModel, job: WorkerRequest): Promise<void> {
  const t0 = performance.now();
  try {
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
    reply({
      type: 'error',
      id: job.id,
      message: error instanceof Error ? error.message : String(error),
      memory: memory(),
    });
  }
}

const model = await start();
if (model) {
  // One job at a time, in arrival order, also when a job awaits its engine.
  let chain = Promise.resolve();
  port.on('message', (job: WorkerRequest) => {
    chain = chain.then(() => answer(model, job));
  });
}
