/**
 * The model running inside the page. The network forward runs on onnxruntime-web ('ort': the
 * server's ONNX export of the model, or graphs the page makes with Node's exporter; WebGPU or
 * wasm) or on TF.js's wasm backend ('tfjs': the reference); the text prompts are encoded by the
 * model's text tower on TF.js either way, and the post-processing is the project's TypeScript, as
 * in Node. With the server's exports the page holds only the prompt side of the model (text tower
 * and last classifier); the whole model is fetched when the page needs it (TF.js, or graphs it
 * makes). The .wasm/.mjs files of both runtimes come from the server. Predictions come in the same
 * JSON form the HTTP API answers with.
 */
import { initEngine, tf } from '../engine/engine.js';
import type { ApeModel, PredictOptions } from '../inference/ape-model.js';
import type { RgbImage } from '../io/image-types.js';
import type { Prediction } from '../inference/results.js';
import { DEFAULT_SEMANTIC_THRESHOLD } from '../inference/semantic-confidence.js';
import { predictionToJson, type PredictionJson } from '../inference/prediction-json.js';
import type { DownloadProgress } from './fetch-bytes.js';
import {
  fetchModelFiles,
  fetchModelText,
  modelFilesHash,
  modelFromBytes,
  type FetchedModelText,
} from './load-model-browser.js';
import { loadPromptSide } from './load-prompt-side.js';
import type { GraphsLoaded, WebOrtBackend, WebOrtEngine } from './web-ort-engine.js';

/** Where the page runs the network: onnxruntime-web, or TF.js (wasm). */
export type BrowserEngine = 'ort' | 'tfjs';

export interface InBrowserOptions {
  /** URL folder serving tfjs-backend-wasm's .wasm files (the server's /v1/wasm/). */
  wasmPaths: string;
  /** URL folder serving onnxruntime-web's .mjs and .wasm files (the server's /v1/ort/). */
  ortWasmPaths: string;
  /** URL folder serving the model's files (the server's /v1/model/files/). */
  filesUrl: string;
  /**
   * URL folder of the server's ONNX exports (its /v1/onnx/). Where it answers, the page loads only
   * the model's prompt side and runs the server's graphs; absent or silent (a static page), the
   * page loads the whole model and makes the graphs itself.
   */
  onnxUrl?: string;
  onProgress?: DownloadProgress;
}

export interface InBrowserRequest {
  vocabulary: string[];
  sentences: string[];
  threshold?: number;
  semanticThreshold?: number;
}

/** A model and the hash of the files it was made from (sha256 of config.json and the weights). */
interface HashedModel {
  model: ApeModel;
  hash: string;
}

/** What the page holds of the model: all of it, or its prompt side (text tower, last classifier). */
export interface LoadedWeights {
  parts: 'all' | 'prompts';
  /** Bytes of model.safetensors downloaded, and its size. */
  bytes: number;
  fileBytes: number;
}

/** The model's name and hash as the server's /v1/onnx reports them, or null where there is no such route. */
async function servedModel(onnxUrl: string): Promise<{ name: string; hash: string } | null> {
  try {
    const response = await fetch(onnxUrl.replace(/\/+$/, ''));
    if (!response.ok) return null;
    const body = (await response.json()) as { model?: { name?: unknown; hash?: unknown } };
    const { name, hash } = body.model ?? {};
    return typeof name === 'string' && typeof hash === 'string' && /^[0-9a-f]{64}$/.test(hash) ? { name, hash } : null;
  } catch {
    return null;
  }
}

/** Downloads the whole model (the weights in full) and hashes it as Node does. */
async function fetchWholeModel(
  filesUrl: string,
  text: FetchedModelText,
  onProgress: DownloadProgress | undefined,
): Promise<HashedModel & { fileBytes: number }> {
  const files = await fetchModelFiles(filesUrl, onProgress, text);
  const hash = (await modelFilesHash(files)) ?? 'unknown (no Web Crypto in this page)';
  return { model: await modelFromBytes(files), hash, fileBytes: files.weights.length };
}

export class InBrowserModel {
  private ort: Promise<WebOrtEngine> | null = null;
  /** The whole model: the same as `model` when the page loaded all of it, else fetched on first need. */
  private whole: Promise<HashedModel> | null = null;
  /** Notes of the run in progress. */
  private notes: string[] = [];
  /** Notes of the last predict: a server's export not used, and why (the page made the graphs itself). */
  lastNotes: string[] = [];

  private constructor(
    /** What predict runs on with onnxruntime-web: the prompt side, or the whole model. */
    private readonly model: HashedModel,
    private readonly text: FetchedModelText,
    private readonly options: InBrowserOptions,
    /** The server's exports, or null: the page makes the graphs. */
    private readonly onnxUrl: string | null,
    readonly weights: LoadedWeights,
    readonly loadMs: number,
    /** Why the page loaded the whole model although the server has exports (null: it did not, or there are none). */
    readonly loadNote: string | null,
  ) {}

  /**
   * Loads the model into the page: its prompt side only where the server offers its ONNX exports
   * (the network then runs the server's graphs), else all of it.
   */
  static async load(options: InBrowserOptions): Promise<InBrowserModel> {
    const t0 = performance.now();
    await initEngine({ backend: 'wasm', wasmPaths: options.wasmPaths });
    const text = await fetchModelText(options.filesUrl, options.onProgress);
    const served = options.onnxUrl ? await servedModel(options.onnxUrl) : null;
    let note: string | null = null;
    if (served && options.onnxUrl) {
      try {
        const side = await loadPromptSide(options.filesUrl, text, served.hash, options.onProgress);
        const weights: LoadedWeights = { parts: 'prompts', bytes: side.weightBytes, fileBytes: side.fileBytes };
        const hashed = { model: side.model, hash: served.hash };
        return new InBrowserModel(hashed, text, options, options.onnxUrl, weights, performance.now() - t0, null);
      } catch (e) {
        note = `the model's prompt side could not be loaded alone (${(e as Error).message}); the whole model was loaded`;
      }
    }
    const whole = await fetchWholeModel(options.filesUrl, text, options.onProgress);
    const weights: LoadedWeights = { parts: 'all', bytes: whole.fileBytes, fileBytes: whole.fileBytes };
    const loaded = new InBrowserModel(
      whole,
      text,
      options,
      served ? (options.onnxUrl ?? null) : null,
      weights,
      performance.now() - t0,
      note,
    );
    loaded.whole = Promise.resolve(whole);
    return loaded;
  }

  get name(): string {
    return this.model.model.config.name;
  }

  /** The TF.js backend (text tower, exporter and the 'tfjs' engine). */
  get backend(): string {
    return tf.getBackend();
  }

  /** Tensors alive in the page's TF.js engine (the model's weights plus anything leaked). */
  get numTensors(): number {
    return tf.memory().numTensors;
  }

  /** The whole model (the 'tfjs' engine, graphs made in the page), downloaded on first need when the page holds its prompt side. */
  private wholeModel(): Promise<HashedModel> {
    if (!this.whole) {
      this.whole = fetchWholeModel(this.options.filesUrl, this.text, this.options.onProgress);
      this.whole.catch(() => {
        this.whole = null;
      });
    }
    return this.whole;
  }

  /** onnxruntime-web, loaded on first use (WebGPU or wasm, see WebOrtEngine). */
  ortEngine(backend: WebOrtBackend | 'auto' = 'auto'): Promise<WebOrtEngine> {
    if (!this.ort) {
      this.ort = import('./web-ort-engine.js').then(async ({ WebOrtEngine }) => {
        const engine = await WebOrtEngine.create(this.model.model, {
          wasmPaths: this.options.ortWasmPaths,
          modelHash: this.model.hash,
          backend,
          onnxUrl: this.onnxUrl,
          wholeNetwork: async () => {
            const { model, hash } = await this.wholeModel();
            return { network: model, hash };
          },
          ...(this.options.onProgress ? { onProgress: this.options.onProgress } : {}),
          onNote: (note) => this.notes.push(note),
        });
        // model.predict runs the network on it; predictSync (the 'tfjs' engine) stays on TF.js.
        this.model.model.setInferenceRunner(engine);
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
    let ran: ApeModel;
    const timing: Record<string, number> = {};
    this.notes = [];
    if (engine === 'ort') {
      const ort = await this.ortEngine();
      ort.lastGraphs = null;
      ran = this.model.model;
      prediction = await ran.predict(image, options);
      // The first run of a new image geometry or prompt count gets its graphs (from the server, or
      // made here) and makes their sessions.
      // Set during the await above (TypeScript keeps the narrowing to null across it).
      const graphs = ort.lastGraphs as GraphsLoaded | null;
      if (graphs) {
        timing[graphs.source === 'server' ? 'downloadMs' : 'exportMs'] = graphs.ms;
        timing.sessionsMs = graphs.sessionsMs;
      }
    } else {
      ran = (await this.wholeModel()).model;
      // Synchronous, so a tidy scope frees whatever tensors the forward pass leaves behind.
      let predictions: Prediction[] = [];
      tf.tidy(() => {
        predictions = ran.predictSync([image], options);
      });
      prediction = predictions[0]!;
    }
    this.lastNotes = this.notes;
    // predict's network time includes getting new graphs and making their sessions.
    const graphsMs = (timing.downloadMs ?? timing.exportMs ?? 0) + (timing.sessionsMs ?? 0);
    timing.networkMs = ran.lastTimings.network - graphsMs;
    timing.inferenceMs = performance.now() - t0;
    const round = (v: number) => Math.round(v * 10) / 10;
    return {
      ...predictionToJson(prediction),
      timing: Object.fromEntries(Object.entries(timing).map(([k, v]) => [k, round(v)])),
    };
  }
}
