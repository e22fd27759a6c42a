/**
 * The model's thread: loads the model once, then answers predict jobs one at a time with the
 * JSON form of the prediction. Started by ModelHost; not meant to be run on its own.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initEngine, tf } from '../engine/engine.js';
import { loadModel } from '../inference/model-files.js';
import { DEFAULT_SEMANTIC_THRESHOLD } from '../inference/semantic-confidence.js';
import type { ApeModel } from '../inference/ape-model.js';
import { DEFAULT_SCORE_THRESHOLD, type Prediction } from '../inference/results.js';
import { predictionToJson } from '../inference/prediction-json.js';
import type { ModelWorkerData } from './model-host.js';
import type { EngineMemory, WorkerReply, WorkerRequest } from './worker-protocol.js';
import { required } from '../util/checked.js';

const port = parentPort;
if (!port) throw new Error('model-worker: must run as a worker thread');

function memory(): EngineMemory {
  const m = tf.memory();
  return { numTensors: m.numTensors, numBytes: m.numBytes };
}

const reply = (message: WorkerReply) => port.postMessage(message);

async function start(): Promise<ApeModel | null> {
  const { modelDir, inputSize } = workerData as ModelWorkerData;
  try {
    const t0 = performance.now();
    await initEngine({ backend: 'wasm' });
    const model = await loadModel(modelDir, inputSize !== undefined ? { inputSize } : {});
    reply({
      type: 'ready',
      info: {
        name: model.config.name,
        config: model.config,
        backend: tf.getBackend(),
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

const model = await start();
if (model) {
  port.on('message', (job: WorkerRequest) => {
    const t0 = performance.now();
    try {
      // predictSync is synchronous, so a tidy scope around it frees any tensor it leaves behind:
      // a long-running server must not grow by even one tensor per request.
      let predictions: Prediction[] = [];
      tf.tidy(() => {
        predictions = model.predictSync([{ width: job.image.width, height: job.image.height, data: job.image.data }], {
          vocabulary: job.vocabulary,
          sentences: job.sentences,
          threshold: job.threshold ?? DEFAULT_SCORE_THRESHOLD,
          semanticThreshold: job.semanticThreshold ?? DEFAULT_SEMANTIC_THRESHOLD,
        });
      });
      const json = predictionToJson(required(predictions[0], 'the prediction'));
      reply({ type: 'result', id: job.id, json, inferenceMs: performance.now() - t0, memory: memory() });
    } catch (error) {
      reply({
        type: 'error',
        id: job.id,
        message: error instanceof Error ? error.message : String(error),
        memory: memory(),
      });
    }
  });
}
