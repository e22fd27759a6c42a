/**
 * The model running inside the page: TF.js on its wasm backend (the .wasm files come from the
 * server), the weights fetched once, predictions in the same JSON form the HTTP API answers with.
 */
import { initEngine, tf } from '../engine/engine.js';
import type { ApeModel } from '../inference/ape-model.js';
import type { RgbImage } from '../io/image-types.js';
import type { Prediction } from '../inference/results.js';
import { DEFAULT_SEMANTIC_THRESHOLD } from '../inference/semantic-confidence.js';
import { predictionToJson, type PredictionJson } from '../inference/prediction-json.js';
import { fetchModel, type DownloadProgress } from './load-model-browser.js';
import { required } from '../util/checked.js';

export interface InBrowserOptions {
  /** URL folder serving tfjs-backend-wasm's .wasm files (the server's /v1/wasm/). */
  wasmPaths: string;
  /** URL folder serving the model's files (the server's /v1/model/files/). */
  filesUrl: string;
  onProgress?: DownloadProgress;
}

export interface InBrowserRequest {
  vocabulary: string[];
  sentences: string[];
  threshold?: number;
  semanticThreshold?: number;
}

export class InBrowserModel {
  private constructor(
    private readonly model: ApeModel,
    readonly loadMs: number,
  ) {}

  static async load(options: InBrowserOptions): Promise<InBrowserModel> {
    const t0 = performance.now();
    await initEngine({ backend: 'wasm', wasmPaths: options.wasmPaths });
    const model = await fetchModel(options.filesUrl, options.onProgress);
    return new InBrowserModel(model, performance.now() - t0);
  }

  get name(): string {
    return this.model.config.name;
  }

  get backend(): string {
    return tf.getBackend();
  }

  /** Tensors alive in the page's engine (the model's weights plus anything leaked). */
  get numTensors(): number {
    return tf.memory().numTensors;
  }

  predict(image: RgbImage, request: InBrowserRequest): PredictionJson {
    const t0 = performance.now();
    // Synchronous, so a tidy scope frees whatever tensors the forward pass leaves behind.
    let predictions: Prediction[] = [];
    tf.tidy(() => {
      predictions = this.model.predictSync([image], {
        vocabulary: request.vocabulary,
        sentences: request.sentences,
        ...(request.threshold !== undefined ? { threshold: request.threshold } : {}),
        semanticThreshold: request.semanticThreshold ?? DEFAULT_SEMANTIC_THRESHOLD,
      });
    });
    const prediction = required(predictions[0], 'the in-browser prediction');
    const inferenceMs = performance.now() - t0;
    return { ...predictionToJson(prediction), timing: { inferenceMs: Math.round(inferenceMs * 10) / 10 } };
  }
}
