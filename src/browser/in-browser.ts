/**
 * The model running inside the page. The network forward runs on onnxruntime-web ('ort': the
 * server's ONNX export of the model, or graphs the page makes with Node's exporter; WebGPU or
 * wasm) or on TF.js's wasm backend ('tfjs': the reference); the text prompts are encoded on the
 * same engine ('ort': the server's text export, or graphs made in the page from the TF.js tower),
 * or, for a text tower the server says is too large for the page (the released models' 2.78 GB),
 * by the server (server-prompts.ts: the page then holds no tower and fetches none of it), and the
 * post-processing is the project's TypeScript, as in Node. With the server's exports the
 * page holds only the last classifier of the model (its prompt side, text tower included, where
 * the text export is refused); the whole model is fetched when the page needs it (TF.js, or graphs
 * it makes). Weights are read tensor by tensor out of byte ranges, never as one array. The
 * .wasm/.mjs files of both runtimes come from the server. Predictions come in the same JSON form
 * the HTTP API answers with.
 */
import { initEngine, tf } from '../engine/engine.js';
import { readValues } from '../engine/read-values.js';
import type { ApeModel, PredictOptions } from '../inference/ape-model.js';
import type { RgbImage } from '../io/image-types.js';
import type { Prediction } from '../inference/results.js';
import { DEFAULT_SEMANTIC_THRESHOLD } from '../inference/semantic-confidence.js';
import { predictionToJson, type PredictionJson } from '../inference/prediction-json.js';
import type { NetworkParts } from '../modeling/ape-network.js';
import type { DownloadProgress } from './fetch-bytes.js';
import { fetchModelText, parseModelConfig, type FetchedModelText } from './load-model-browser.js';
import { loadModelParts } from './load-model-parts.js';
import { ExportRefused, fetchServerTextExport, type TextExportGraphs } from './server-export.js';
import { fetchPromptEncoding, ServerPromptEncoder } from './server-prompts.js';
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
   * the model's last classifier and runs the server's graphs, the text tower's too; absent or
   * silent (a static page), the page loads the whole model and makes the graphs itself.
   */
  onnxUrl?: string;
  /**
   * The server's /v1/model, which says where prompts are encoded (its promptEncoding): where it
   * says 'server' (and the page uses the server's exports), the page asks the server for its
   * prompts' vectors and holds no text tower. Absent: prompts are encoded in the page.
   */
  modelUrl?: string;
  onProgress?: DownloadProgress;
}

export interface InBrowserRequest {
  vocabulary: string[];
  sentences: string[];
  threshold?: number;
  semanticThreshold?: number;
}

/**
 * A model and the hash of the files it was made from (sha256 of config.json and the weights), as
 * the server names it and the weights' version carries it; UNCHECKED_HASH where there is no server
 * to name it (a static page), or its version does not carry it.
 */
interface HashedModel {
  model: ApeModel;
  hash: string;
}

/** The hash of a model whose files the page could not match to one (it labels the graphs made in the page). */
const UNCHECKED_HASH = 'unknown (not named by the server)';

/**
 * What the page holds of the model: all of it, its prompt side (text tower, last classifier) or
 * its last classifier alone (the text tower runs the server's export).
 */
export interface LoadedWeights {
  parts: NetworkParts;
  /** Where prompts are encoded: in the page, or by the server (its text tower's weights, in bytes, are not fetched). */
  prompts: { on: 'page' } | { on: 'server'; textTowerBytes: number };
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

export class InBrowserModel {
  private ort: Promise<WebOrtEngine> | null = null;
  /** The whole model: the same as `model` when the page loaded all of it, else fetched on first need. */
  private whole: Promise<HashedModel> | null = null;
  /** Notes of the run in progress. */
  private notes: string[] = [];
  /** Notes for the next run: why the load made do without a server's export. */
  private pendingNotes: string[];
  /**
   * Notes of the last predict: a server's export not used, and why (the page made the graphs
   * itself); the first also says why the load made do without one.
   */
  lastNotes: string[] = [];

  private constructor(
    /** What predict runs on with onnxruntime-web: the classifier, the prompt side, or the whole model. */
    private readonly model: HashedModel,
    private readonly text: FetchedModelText,
    private readonly options: InBrowserOptions,
    /** The server's exports, or null: the page makes the graphs. */
    private readonly onnxUrl: string | null,
    /** The server's text export, or null: the page makes the text graphs from a TF.js tower. */
    private readonly textExport: TextExportGraphs | null,
    /** The server that encodes prompts for the page (a text tower too large for it), or null. */
    private readonly serverPrompts: ServerPromptEncoder | null,
    readonly weights: LoadedWeights,
    readonly loadMs: number,
    /** Why the page made do without (some of) the server's exports although it has them, or null. */
    readonly loadNote: string | null,
  ) {
    this.pendingNotes = loadNote ? [loadNote] : [];
  }

  /**
   * Loads the model into the page: where the server offers its ONNX exports, its last classifier
   * only (the network and the text tower run the server's graphs), or its prompt side where the
   * text export is refused; else all of it.
   */
  static async load(options: InBrowserOptions): Promise<InBrowserModel> {
    const t0 = performance.now();
    await initEngine({ backend: 'wasm', wasmPaths: options.wasmPaths });
    const text = await fetchModelText(options.filesUrl, options.onProgress);
    const served = options.onnxUrl ? await servedModel(options.onnxUrl) : null;
    let note: string | null = null;
    if (served && options.onnxUrl) {
      const { onnxUrl } = options;
      const config = parseModelConfig(text.config);
      const encoding = options.modelUrl ? await fetchPromptEncoding(options.modelUrl) : null;
      const serverPrompts =
        encoding?.encodeIn === 'server'
          ? new ServerPromptEncoder(encoding, served.hash, config.text.encoder.embedDim)
          : null;
      let textExport: TextExportGraphs | null = null;
      if (!serverPrompts) {
        try {
          textExport = await fetchServerTextExport(onnxUrl, config.text, served.hash, options.onProgress);
        } catch (e) {
          const why = e instanceof ExportRefused ? e.message : `could not be fetched (${(e as Error).message})`;
          note = `the server's ONNX text export ${why}; the text tower's weights were loaded instead`;
        }
      }
      const parts = textExport || serverPrompts ? 'classifier' : 'prompts';
      try {
        const side = await loadModelParts(options.filesUrl, text, {
          parts,
          modelHash: served.hash,
          onProgress: options.onProgress,
        });
        const weights: LoadedWeights = {
          parts,
          prompts: serverPrompts
            ? { on: 'server', textTowerBytes: serverPrompts.encoding.textTowerBytes }
            : { on: 'page' },
          bytes: side.weightBytes,
          fileBytes: side.fileBytes,
        };
        const hashed = { model: side.model, hash: served.hash };
        return new InBrowserModel(
          hashed,
          text,
          options,
          onnxUrl,
          textExport,
          serverPrompts,
          weights,
          performance.now() - t0,
          note,
        );
      } catch (e) {
        note = `the model's ${parts === 'classifier' ? 'classifier' : 'prompt side'} could not be loaded alone (${(e as Error).message}); the whole model was loaded and the server's ONNX exports are not used`;
      }
    }
    const whole = await loadModelParts(options.filesUrl, text, {
      parts: 'all',
      modelHash: null,
      onProgress: options.onProgress,
    });
    const weights: LoadedWeights = {
      parts: 'all',
      prompts: { on: 'page' },
      bytes: whole.weightBytes,
      fileBytes: whole.fileBytes,
    };
    const hashed = { model: whole.model, hash: UNCHECKED_HASH };
    const loaded = new InBrowserModel(hashed, text, options, null, null, null, weights, performance.now() - t0, note);
    loaded.whole = Promise.resolve(hashed);
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

  /**
   * The whole model (the 'tfjs' engine, graphs made in the page), downloaded on first need when
   * the page holds part of it: its weights by ranges of the version the server names. Where the
   * server encodes the prompts, all but the text tower (parts 'detector').
   */
  private wholeModel(): Promise<HashedModel> {
    if (!this.whole) {
      const { filesUrl, onProgress } = this.options;
      const hash = this.model.hash;
      const parts = this.serverPrompts ? 'detector' : 'all';
      this.whole = loadModelParts(filesUrl, this.text, { parts, modelHash: hash, onProgress }).then(({ model }) => ({
        model,
        hash,
      }));
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
          textExport: this.textExport,
          serverPrompts: this.serverPrompts?.encode ?? null,
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

  /** Where prompts are encoded, in words (the page's status line says it). */
  get promptsEncodedBy(): string {
    return this.serverPrompts ? 'prompts encoded by the server' : 'prompts encoded in this browser';
  }

  /** Texts the page has sent the server to encode (0 where it encodes them itself). */
  get promptsSentToServer(): number {
    return this.serverPrompts?.sent ?? 0;
  }

  /**
   * The vectors predict scores `texts` with on `engine` (each encoded by that engine's text tower,
   * or by the server, where the prompt cache lacks it), one per text.
   */
  async promptVectors(texts: readonly string[], engine: BrowserEngine = 'ort'): Promise<Float32Array[]> {
    let model: ApeModel;
    if (engine === 'ort') {
      await (await this.ortEngine()).encodePrompts(texts);
      model = this.model.model;
    } else {
      model = await this.tfjsModel(texts);
    }
    const flat = readValues(() => model.encodePrompts(texts));
    const dim = flat.length / Math.max(1, texts.length);
    return texts.map((_, i) => flat.slice(i * dim, (i + 1) * dim));
  }

  /** The model the 'tfjs' engine runs, with the vectors of `texts` in its prompt cache where the server encodes them. */
  private async tfjsModel(texts: readonly string[]): Promise<ApeModel> {
    const { model } = await this.wholeModel();
    if (this.serverPrompts) await model.preparePromptTexts(texts, this.serverPrompts.encode);
    return model;
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
    this.notes = this.pendingNotes;
    this.pendingNotes = [];
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
      ran = await this.tfjsModel([...request.vocabulary, ...request.sentences]);
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
