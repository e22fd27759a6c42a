/**
 * The model running inside the page. The network forward runs on onnxruntime-web ('ort': the
 * graphs Node's exporter makes, WebGPU or wasm) or on TF.js's wasm backend ('tfjs': the reference);
 * the text prompts are encoded by the model's text tower on TF.js either way, and the
 * post-processing is the project's TypeScript, as in Node. The weights are fetched once; the
 * .wasm/.mjs files of both runtimes come from the server. Predictions come in the same JSON form
 * the HTTP API answers with.
 */
import { initEngine, tf } from '../engine/engine.js';
import type { ApeModel, PredictOptions } from '../inference/ape-model.js';
import type { RgbImage } from '../io/image-types.js';
import type { Prediction } from '../inference/results.js';
import { DEFAULT_SEMANTIC_THRESHOLD } from '../inference/semantic-confidence.js';
import { predictionToJson, type PredictionJson } from '../inference/prediction-json.js';
import { fetchModelFiles, modelFilesHash, modelFromBytes, type DownloadProgress } from './load-model-browser.js';
import type { WebOrtBackend, WebOrtEngine } from './web-ort-engine.js';

/** Where the page runs the network: onnxruntime-web, or TF.js (wasm). */
export type BrowserEngine = 'ort' | 'tfjs';

export interface InBrowserOptions {
  /** URL folder serving tfjs-backend-wasm's .wasm files (the server's /v1/wasm/). */
  wasmPaths: string;
  /** URL folder serving onnxruntime-web's .mjs and .wasm files (the server's /v1/ort/). */
  ortWasmPaths: string;
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
  private ort: Promise<WebOrtEngine> | null = null;

  private constructor(
    private readonly model: ApeModel,
    private readonly modelHash: string,
    private readonly ortWasmPaths: string,
    readonly loadMs: number,
  ) {}

  static async load(options: InBrowserOptions): Promise<InBrowserModel> {
    const t0 = performance.now();
    await initEngine({ backend: 'wasm', wasmPaths: options.wasmPaths });
    const files = await fetchModelFiles(options.filesUrl, options.onProgress);
    const hash = (await modelFilesHash(files)) ?? 'unknown (no Web Crypto in this page)';
    const model = await modelFromBytes(files);
    return new InBrowserModel(model, hash, options.ortWasmPaths, performance.now() - t0);
  }

  get name(): string {
    return this.model.config.name;
  }

  /** The TF.js backend (text tower, exporter and the 'tfjs' engine). */
  get backend(): string {
    return tf.getBackend();
  }

  /** Tensors alive in the page's TF.js engine (the model's weights plus anything leaked). */
  get numTensors(): number {
    return tf.memory().numTensors;
  }

  /** onnxruntime-web, loaded on first use (WebGPU or wasm, see WebOrtEngine). */
  ortEngine(backend: WebOrtBackend | 'auto' = 'auto'): Promise<WebOrtEngine> {
    if (!this.ort) {
      this.ort = import('./web-ort-engine.js').then(async ({ WebOrtEngine }) => {
        const engine = await WebOrtEngine.create(this.model, {
          wasmPaths: this.ortWasmPaths,
          modelHash: this.modelHash,
          backend,
        });
        // model.predict runs the network on it; predictSync (the 'tfjs' engine) stays on TF.js.
        this.model.setInferenceRunner(engine);
        return engine;
      });
      this.ort.catch(() => {
        this.ort = null;
      });
    }
    return this.ort;
  }

  /** What runs the network for `engine`, in words (e.g. 'onnxruntime-web 1.30.0, wasm, 2 threads'). */
  async describe(engine: BrowserEngine): Promise<string> {
    return engine === 'ort' ? (await this.ortEngine()).description : `TF.js ${this.backend}`;
  }

  async predict(image: RgbImage, request: InBrowserRequest, engine: BrowserEngine = 'ort'): Promise<PredictionJson> {
    const t0 = performance.now();
    const options: PredictOptions = {
      vocabulary: request.vocabulary,
      sentences: request.sentences,
      ...(request.threshold !== undefined ? { threshold: request.threshold } : {}),
      semanticThreshold: request.semanticThreshold ?? DEFAULT_SEMANTIC_THRESHOLD,
    };
    let prediction: Prediction;
    const timing: Record<string, number> = {};
    if (engine === 'ort') {
      const ort = await this.ortEngine();
      ort.lastExportMs = 0;
      prediction = await this.model.predict(image, options);
      // The first run of a new image geometry or prompt count exports the graph and makes its sessions.
      if (ort.lastExportMs > 0) timing.exportMs = ort.lastExportMs;
    } else {
      // Synchronous, so a tidy scope frees whatever tensors the forward pass leaves behind.
      let predictions: Prediction[] = [];
      tf.tidy(() => {
        predictions = this.model.predictSync([image], options);
      });
      prediction = predictions[0]!;
    }
    timing.networkMs = this.model.lastTimings.network - (timing.exportMs ?? 0);
    timing.inferenceMs = performance.now() - t0;
    const round = (v: number) => Math.round(v * 10) / 10;
    return {
      ...predictionToJson(prediction),
      timing: Object.fromEntries(Object.entries(timing).map(([k, v]) => [k, round(v)])),
    };
  }
}
