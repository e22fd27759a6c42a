/**
 * predict's network forward on onnxruntime-web in the page: WebGPU where the browser gives an
 * adapter (ops WebGPU lacks run on its wasm CPU provider), else wasm, with threads where the page
 * is cross-origin isolated (SharedArrayBuffer), one thread otherwise. The graphs are made in the
 * page by the exporter Node uses (a recorded TF.js forward of the loaded model, per input size
 * and sentence bucket, and the text tower's graphs for the prompts) and kept in memory; the
 * runtime's .mjs and .wasm files come from the server.
 */
import type * as OrtWeb from 'onnxruntime-web';
import type { ApeNetwork } from '../modeling/ape-network.js';
import { exportNetwork, type ExportShape } from '../onnx/export-network.js';
import { OrtRunner } from '../onnx/ort-runner.js';
import { createSegmentSessions, SegmentedNetwork } from '../onnx/segmented-network.js';
import { OrtTextTower } from '../onnx/ort-text-tower.js';
import { exportTextTower, textExportShape } from '../onnx/text-export.js';
import { OrtPromptScorer } from '../onnx/ort-prompt-scorer.js';
import { exportPromptScorer, type PromptScoreShape } from '../onnx/prompt-score-export.js';
import { required } from '../util/checked.js';

export type WebOrtBackend = 'webgpu' | 'wasm';

export interface WebOrtOptions {
  /** URL folder serving onnxruntime-web's .mjs and .wasm files (the server's /v1/ort/). */
  wasmPaths: string;
  /** Recorded in each export's manifest, as Node's cache does (sha256 of config.json and the weights). */
  modelHash: string;
  /** 'auto' (default): WebGPU when navigator.gpu gives an adapter, else wasm. */
  backend?: WebOrtBackend | 'auto';
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
  /** Milliseconds spent exporting (and creating the network's sessions) since the caller last set it to 0. */
  lastExportMs = 0;

  private constructor(
    network: ApeNetwork,
    private readonly ort: typeof OrtWeb,
    private backendInUse: WebOrtBackend,
    private readonly modelHash: string,
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
    return new WebOrtEngine(network, ort, backend, options.modelHash);
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

  /** The text tower's graphs, made in the page (weights inside each: no files here), a session per bucket on first use. */
  protected async loadTextTower(): Promise<OrtTextTower> {
    const t0 = performance.now();
    const { name, text } = this.network.config;
    const exported = exportTextTower(
      this.network.language.net,
      text.pooling,
      textExportShape(text.encoder.contextLength),
      { name, hash: this.modelHash },
      { externalData: false },
    );
    const { graphs } = exported.manifest;
    this.lastExportMs += performance.now() - t0;
    return new OrtTextTower(
      exported.manifest,
      async (graph) => {
        const bytes = exported.files[graphs.indexOf(graph)]!;
        const create = (backend: WebOrtBackend) =>
          this.ort.InferenceSession.create(bytes, { executionProviders: [backend], graphOptimizationLevel: 'all' });
        try {
          return await create(this.backendInUse);
        } catch (error) {
          if (this.backendInUse === 'wasm') throw error;
          console.warn(`onnxruntime-web: WebGPU failed on the text tower (${(error as Error).message}); using wasm`);
          this.backendInUse = 'wasm';
          return create('wasm');
        }
      },
      (type, data, dims) => new this.ort.Tensor(type, data, dims),
    );
  }

  /** The vocabulary chunks' scoring graphs, made in the page (a few kilobytes, no weights), a session per chunk width. */
  protected async loadPromptScorer(shape: PromptScoreShape): Promise<OrtPromptScorer> {
    const t0 = performance.now();
    const head = required(this.network.classEmbed[this.network.classEmbed.length - 1], 'the classifier');
    const exported = exportPromptScorer(head, shape, { name: this.network.config.name, hash: this.modelHash });
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
    this.lastExportMs += performance.now() - t0;
    return new OrtPromptScorer(
      exported.manifest,
      sessions,
      (type, data, dims) => new this.ort.Tensor(type, data, dims),
    );
  }

  protected async loadNetwork(_key: string, shape: ExportShape): Promise<SegmentedNetwork> {
    const t0 = performance.now();
    const exported = exportNetwork(this.network, shape, this.modelHash);
    const make = (backend: WebOrtBackend) =>
      createSegmentSessions(exported.manifest, (i) =>
        this.ort.InferenceSession.create(exported.files[i]!, {
          executionProviders: [backend],
          graphOptimizationLevel: 'all',
        }),
      );
    let sessions: OrtWeb.InferenceSession[];
    try {
      sessions = await make(this.backendInUse);
    } catch (error) {
      if (this.backendInUse === 'wasm') throw error;
      // WebGPU offered an adapter but could not run the graph: wasm, in the same runtime build.
      console.warn(`onnxruntime-web: WebGPU failed (${(error as Error).message}); using wasm`);
      this.backendInUse = 'wasm';
      sessions = await make('wasm');
    }
    this.lastExportMs += performance.now() - t0;
    return new SegmentedNetwork(
      exported.manifest,
      sessions,
      (type, data, dims) => new this.ort.Tensor(type, data, dims),
    );
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
