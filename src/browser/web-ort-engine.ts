/**
 * predict's network forward on onnxruntime-web in the page: WebGPU where the browser gives an
 * adapter (ops WebGPU lacks run on its wasm CPU provider), else wasm, with threads where the page
 * is cross-origin isolated (SharedArrayBuffer), one thread otherwise. The graphs of each input
 * size and sentence bucket are fetched from the server (`ape serve` hands out the export Node
 * caches next to the model, checked against the page's model hash), or, where the server has none
 * or it is refused, made in the page by the exporter Node uses (a recorded TF.js forward of the
 * whole model); either way they are kept in memory. The text tower runs the server's text export
 * where the page fetched it (then the page holds no TF.js tower), else graphs made in the page from
 * the TF.js tower it holds, or not at all where the server encodes the prompts (a tower too large
 * for the page). The runtime's .mjs and .wasm files come from the server.
 */
import type * as OrtWeb from 'onnxruntime-web';
import type { ApeNetwork } from '../modeling/ape-network.js';
import { exportNetwork, type ExportShape } from '../onnx/export-network.js';
import { OrtRunner } from '../onnx/ort-runner.js';
import { createSegmentSessions, SegmentedNetwork } from '../onnx/segmented-network.js';
import { OrtTextTower, textSessionsKept } from '../onnx/ort-text-tower.js';
import { chunkBytes } from '../onnx/onnx-model.js';
import { exportTextTower, textExportShape, type TextGraphEntry } from '../onnx/text-export.js';
import { OrtPromptScorer } from '../onnx/ort-prompt-scorer.js';
import { exportPromptScorer, type PromptScoreShape } from '../onnx/prompt-score-export.js';
import { required } from '../util/checked.js';
import { concatArrays } from '../util/concat-arrays.js';
import type { EncodeProgress, PromptTextEncoder } from '../text/prompt-embeddings.js';
import type { DownloadProgress } from './fetch-bytes.js';
import { ExportRefused, fetchServerExport, type ExportGraphs, type TextExportGraphs } from './server-export.js';

export type WebOrtBackend = 'webgpu' | 'wasm';

export interface WebOrtOptions {
  /** URL folder serving onnxruntime-web's .mjs and .wasm files (the server's /v1/ort/). */
  wasmPaths: string;
  /** The hash of the weights `network` holds (sha256 of config.json and the weights): fetched exports must name it. */
  modelHash: string;
  /** 'auto' (default): WebGPU when navigator.gpu gives an adapter, else wasm. */
  backend?: WebOrtBackend | 'auto';
  /** The server's ONNX exports (its /v1/onnx/), or null: the page makes every graph itself. */
  onnxUrl: string | null;
  /**
   * The server's text export, fetched and checked (fetchServerTextExport), or null: the text
   * tower's graphs are made in the page from the network's TF.js tower.
   */
  textExport: TextExportGraphs | null;
  /**
   * Encodes prompts on the page's server (a text tower too large for the page), or null: the text
   * tower runs here (textExport, or graphs made in the page). Given, the text tower is never loaded.
   */
  serverPrompts?: PromptTextEncoder | null;
  /**
   * The whole model and its hash, for making graphs in the page (the network given to create may
   * hold its prompt side or classifier only); called only when a server's export is missing or refused.
   */
  wholeNetwork: () => Promise<{ network: ApeNetwork; hash: string }>;
  onProgress?: DownloadProgress;
  /** Told why a server's export was not used (the page then makes the graphs itself). */
  onNote?: (note: string) => void;
}

/** Where the graphs of the last run that needed new ones came from, and the milliseconds to get them and to make their sessions. */
export interface GraphsLoaded {
  source: 'server' | 'page';
  /**
   * Downloading them (server), or making them (page: with the whole model's download when the page
   * held its prompt side only, and a refused export's fetch).
   */
  ms: number;
  sessionsMs: number;
}

/** Whether the browser offers a WebGPU adapter (headless browsers and most without a GPU do not). */
export async function webGpuAvailable(): Promise<boolean> {
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) return false;
  try {
    return (await gpu.requestAdapter()) != null;
  } catch {
    return false;
  }
}

/** wasm threads: all cores up to 4 where SharedArrayBuffer may be used (cross-origin isolated), else 1. */
export function wasmThreads(): number {
  return globalThis.crossOriginIsolated ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
}

export class WebOrtEngine extends OrtRunner {
  readonly name = 'ort';
  /** The last run's new graphs (null: it used graphs already loaded). */
  lastGraphs: GraphsLoaded | null = null;

  private constructor(
    network: ApeNetwork,
    private readonly ort: typeof OrtWeb,
    private backendInUse: WebOrtBackend,
    private readonly options: WebOrtOptions,
  ) {
    super(network);
  }

  /** Loads onnxruntime-web (the WebGPU build or the smaller wasm-only one) and sets its wasm paths and threads. */
  static async create(network: ApeNetwork, options: WebOrtOptions): Promise<WebOrtEngine> {
    const wanted = options.backend ?? 'auto';
    const backend: WebOrtBackend =
      wanted === 'auto' ? ((await webGpuAvailable()) ? 'webgpu' : 'wasm') : (wanted as WebOrtBackend);
    const ort = backend === 'webgpu' ? await import('onnxruntime-web/webgpu') : await import('onnxruntime-web/wasm');
    ort.env.wasm.wasmPaths = options.wasmPaths;
    ort.env.wasm.numThreads = wasmThreads();
    ort.env.logLevel = 'error';
    return new WebOrtEngine(network, ort, backend, options);
  }

  /** The execution provider the sessions use: 'webgpu', or 'wasm' (also after WebGPU failed to start). */
  get backend(): WebOrtBackend {
    return this.backendInUse;
  }

  /** The wasm threads onnxruntime-web runs with (its wasm provider and WebGPU's CPU fallback). */
  get threads(): number {
    return this.ort.env.wasm.numThreads ?? 1;
  }

  /** e.g. 'onnxruntime-web 1.30.0, wasm, 2 threads'. */
  get description(): string {
    const threads = this.threads;
    return `onnxruntime-web ${this.ort.env.versions.web}, ${this.backend}, ${threads} thread${threads === 1 ? '' : 's'}`;
  }

  /** Puts the vectors of `texts` into the model's prompt cache: those it lacks from the server where it encodes them, else from the text tower here. */
  override async encodePrompts(texts: readonly string[], onProgress?: EncodeProgress): Promise<void> {
    const encode = this.options.serverPrompts;
    if (!encode) return super.encodePrompts(texts, onProgress);
    await this.network.preparePromptTexts(texts, encode, onProgress);
  }

  /**
   * The server's text export (a session per bucket on first use, its shared weights file passed as
   * external data), the first session made now so that a graph onnxruntime-web refuses is caught
   * here; where there is none or it is refused, graphs made in the page from a TF.js tower: the
   * network's, or, when the page holds no tower (it counted on the export), the whole model's.
   */
  protected async loadTextTower(): Promise<OrtTextTower> {
    const served = this.options.textExport;
    if (!served) return this.pageTextTower(this.network);
    try {
      return await this.serverTextTower(served);
    } catch (e) {
      this.options.onNote?.(
        `the server's ONNX text export was refused by onnxruntime-web (${(e as Error).message}); the text graphs were made in this page from the whole model instead`,
      );
      return this.pageTextTower((await this.options.wholeNetwork()).network);
    }
  }

  private async serverTextTower(served: TextExportGraphs): Promise<OrtTextTower> {
    const { manifest, files, data } = served;
    const external = data && manifest.data ? { externalData: [{ path: manifest.data.file, data }] } : {};
    const open = (graph: TextGraphEntry) =>
      this.onBackend('the text tower', (backend) =>
        this.ort.InferenceSession.create(files[manifest.graphs.indexOf(graph)]!, {
          executionProviders: [backend],
          graphOptimizationLevel: 'all',
          ...external,
        }),
      );
    // The smallest bucket's session, made now: handed to the tower when it first asks for that
    // bucket, or released before it opens another (a large tower keeps one session at a time).
    const firstGraph = required(manifest.graphs[0], "the text export's graphs");
    let first: Promise<OrtWeb.InferenceSession> | null = open(firstGraph);
    await first;
    return new OrtTextTower(
      manifest,
      (graph) => {
        const kept = first;
        first = null;
        if (!kept) return open(graph);
        if (graph === firstGraph) return kept;
        return kept.then((session) => session.release()).then(() => open(graph));
      },
      (type, data, dims) => new this.ort.Tensor(type, data, dims),
      textSessionsKept(manifest),
    );
  }

  /** The text tower's graphs made in the page from `network`'s TF.js tower (weights inside each: no files here), a session per bucket on first use. */
  private async pageTextTower(network: ApeNetwork): Promise<OrtTextTower> {
    const { name, text } = network.config;
    const exported = exportTextTower(
      network.language.net,
      text.pooling,
      textExportShape(text.encoder.contextLength),
      { name, hash: this.options.modelHash },
      { externalData: false },
    );
    const { graphs } = exported.manifest;
    return new OrtTextTower(
      exported.manifest,
      (graph) =>
        this.onBackend('the text tower', (backend) => this.session(exported.files[graphs.indexOf(graph)]!, backend)),
      (type, data, dims) => new this.ort.Tensor(type, data, dims),
    );
  }

  /**
   * The vocabulary chunks' scoring graphs, made in the page from the classifier of the prompt side
   * (a few kilobytes, no weights), a session per chunk width.
   */
  protected async loadPromptScorer(shape: PromptScoreShape): Promise<OrtPromptScorer> {
    const head = required(this.network.classEmbed[this.network.classEmbed.length - 1], 'the classifier');
    const exported = exportPromptScorer(head, shape, {
      name: this.network.config.name,
      hash: this.options.modelHash,
    });
    const sessions = await this.onBackend('the vocabulary scoring', async (backend) => {
      const made: OrtWeb.InferenceSession[] = [];
      try {
        for (const bytes of exported.files) made.push(await this.session(bytes, backend));
      } catch (error) {
        await Promise.all(made.map((m) => m.release()));
        throw error;
      }
      return made;
    });
    return new OrtPromptScorer(
      exported.manifest,
      sessions,
      (type, data, dims) => new this.ort.Tensor(type, data, dims),
    );
  }

  /** The server's export of the shape when it has a usable one, else graphs made in the page. */
  protected async loadNetwork(key: string, shape: ExportShape): Promise<SegmentedNetwork> {
    const t0 = performance.now();
    const { onnxUrl } = this.options;
    if (onnxUrl !== null) {
      try {
        const graphs = await fetchServerExport(onnxUrl, shape, this.options.modelHash, this.options.onProgress);
        const t1 = performance.now();
        const sessions = await this.sessions(graphs).catch((e: Error) => {
          throw new ExportRefused(`was refused by onnxruntime-web (${e.message})`);
        });
        return this.ready(graphs, sessions, { source: 'server', ms: t1 - t0, sessionsMs: performance.now() - t1 });
      } catch (e) {
        const why = e instanceof ExportRefused ? e.message : `could not be fetched (${(e as Error).message})`;
        this.options.onNote?.(`the server's ONNX export for ${key} ${why}; the graphs were made in this page instead`);
      }
    }
    const { network, hash } = await this.options.wholeNetwork();
    const exported = exportNetwork(network, shape, hash);
    const graphs: ExportGraphs = {
      manifest: exported.manifest,
      files: exported.files,
      data: exported.data.map((chunks) => (chunks ? concatArrays(Uint8Array, chunks.map(chunkBytes)) : null)),
    };
    const t2 = performance.now();
    const sessions = await this.sessions(graphs);
    return this.ready(graphs, sessions, { source: 'page', ms: t2 - t0, sessionsMs: performance.now() - t2 });
  }

  private ready(graphs: ExportGraphs, sessions: OrtWeb.InferenceSession[], loaded: GraphsLoaded): SegmentedNetwork {
    this.lastGraphs = loaded;
    return new SegmentedNetwork(graphs.manifest, sessions, (type, data, dims) => new this.ort.Tensor(type, data, dims));
  }

  /** One session per segment (external data passed with its file name), on WebGPU falling back to wasm. */
  private async sessions(graphs: ExportGraphs): Promise<OrtWeb.InferenceSession[]> {
    const make = (backend: WebOrtBackend) =>
      createSegmentSessions(graphs.manifest, (i) => {
        const data = graphs.data[i];
        const file = graphs.manifest.segments[i]?.data?.file;
        return this.ort.InferenceSession.create(graphs.files[i]!, {
          executionProviders: [backend],
          graphOptimizationLevel: 'all',
          ...(data && file ? { externalData: [{ path: file, data }] } : {}),
        });
      });
    try {
      return await make(this.backendInUse);
    } catch (error) {
      if (this.backendInUse === 'wasm') throw error;
      // WebGPU offered an adapter but could not run the graph: wasm, in the same runtime build.
      console.warn(`onnxruntime-web: WebGPU failed (${(error as Error).message}); using wasm`);
      this.backendInUse = 'wasm';
      return make('wasm');
    }
  }

  private session(bytes: Uint8Array, backend: WebOrtBackend): Promise<OrtWeb.InferenceSession> {
    return this.ort.InferenceSession.create(bytes, { executionProviders: [backend], graphOptimizationLevel: 'all' });
  }

  /**
   * `make` on the backend in use; where WebGPU offered an adapter but cannot run `what`, on wasm
   * (in the same runtime build) from then on.
   */
  private async onBackend<T>(what: string, make: (backend: WebOrtBackend) => Promise<T>): Promise<T> {
    try {
      return await make(this.backendInUse);
    } catch (error) {
      if (this.backendInUse === 'wasm') throw error;
      console.warn(`onnxruntime-web: WebGPU failed on ${what} (${(error as Error).message}); using wasm`);
      this.backendInUse = 'wasm';
      return make('wasm');
    }
  }
}
