import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { decodeImage } from '../io/image-node.js';
import { inspectImage } from '../io/image-header.js';
import { ImageError } from '../io/image-types.js';
import { CONFIG_FILE, WEIGHTS_FILE, parseModelConfig } from '../inference/model-folder.js';
import { filesHash } from '../onnx/export-files.js';
import type { InferenceEngineName } from '../inference/model-files.js';
import { HttpError, errorBody } from './http-error.js';
import { pixelBudgetFor, resolveLimits, type ServerLimits } from './limits.js';
import { ModelHost, type PredictOutcome } from './model-host.js';
import { parsePredictRequest, type PredictRequest } from './predict-request.js';
import { parsePromptsRequest } from './prompts-request.js';
import {
  DEFAULT_PAGE_TEXT_TOWER_LIMIT,
  PROMPTS_ROUTE,
  promptEncodingStatement,
  textTowerBytes,
  type PromptEncodingStatement,
} from './prompt-encoding.js';
import { readBody } from './read-body.js';
import { ServedExports } from './onnx-exports.js';
import { listServableFiles, sendFile } from './static-files.js';
import { WorkQueue } from './work-queue.js';

export interface ApeServerOptions {
  /** A model folder (config, safetensors weights, tokenizer). */
  modelDir: string;
  /** Input size instead of the model's (a multiple of 64): smaller is faster and coarser. */
  inputSize?: number;
  /** Where the network runs: 'ort' (default, ONNX Runtime) or 'tfjs'. */
  engine?: InferenceEngineName;
  /** Told the model thread's notes (an ONNX export being made on first use); default: none. */
  log?: (line: string) => void;
  limits?: Partial<ServerLimits>;
  /** The built web page (index.html, app.js, style.css); default: dist/web of this package. */
  webDir?: string;
  /** Where tfjs-backend-wasm's .wasm files are; default: found through module resolution. */
  wasmDir?: string;
  /** Where onnxruntime-web's .mjs and .wasm files are; default: found through module resolution. */
  ortWasmDir?: string;
  /** Example images offered on the page (PNG/JPEG files); default: examples/ of this package. */
  examplesDir?: string;
  /**
   * The largest text tower the page runs itself (bytes of its weights); a larger one's prompts are
   * encoded here (`POST /v1/prompts`). Default DEFAULT_PAGE_TEXT_TOWER_LIMIT (512 MiB); 0 sends
   * every page's prompts here.
   */
  pageTextTowerLimit?: number;
}

/** The model folder's files the page may fetch to run the model in the browser. */
const MODEL_FILE_EXTENSIONS = ['.json', '.safetensors', '.txt', '.gz'];

const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export function defaultWebDir(): string {
  return join(PACKAGE_ROOT, 'dist', 'web');
}

export function defaultExamplesDir(): string {
  return join(PACKAGE_ROOT, 'examples');
}

export function defaultWasmDir(): string {
  const require = createRequire(import.meta.url);
  // The package's main file lives in dist/, next to its .wasm files.
  return dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
}

export function defaultOrtWasmDir(): string {
  const require = createRequire(import.meta.url);
  // The package's CommonJS entry lives in dist/, next to its .mjs loaders and .wasm files.
  return dirname(require.resolve('onnxruntime-web'));
}

/** onnxruntime-web's runtimes the page may load: the wasm build (threaded and not) and the WebGPU one. */
const ORT_WASM_FILE = /^ort-wasm-simd-threaded(\.asyncify)?\.(mjs|wasm)$/;

/**
 * Sent with every answer: the page is cross-origin isolated (COOP + COEP), so it may use
 * SharedArrayBuffer and onnxruntime-web runs wasm with threads; everything it loads comes from this
 * server (same origin), which CORP says.
 */
const ISOLATION_HEADERS: Record<string, string> = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
};

function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  response.end(text);
}

function imageErrorToHttp(error: ImageError): HttpError {
  switch (error.reason) {
    case 'unsupported':
      return new HttpError(415, 'unsupported-image', `${error.message} (send PNG, JPEG or WebP)`);
    case 'too-large':
      return new HttpError(413, 'image-too-large', error.message);
    default:
      return new HttpError(400, `bad-image-${error.reason}`, error.message);
  }
}

/** The file name after `prefix` in a URL path (percent-decoded); 404 when it does not decode. */
function fileNameIn(path: string, prefix: string): string {
  try {
    return decodeURIComponent(path.slice(prefix.length));
  } catch {
    throw new HttpError(404, 'not-found', `no file '${path.slice(prefix.length, prefix.length + 100)}' here`);
  }
}

/** Own copy of the pixels, so the buffer can be handed to the worker without touching others. */
function ownBytes(data: Uint8Array): Uint8Array {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer
    ? data
    : data.slice();
}

/** A job for the model thread, run in its turn (`signal`: its deadline passed). */
type ModelTask = (signal: AbortSignal) => Promise<unknown>;

/** One API route: GET also answers HEAD; `file` is the decoded rest of the path for a path ending in '/'. */
interface Route {
  path: string;
  method: 'GET' | 'POST';
  handle(request: IncomingMessage, response: ServerResponse, file: string): Promise<void> | void;
}

export interface ApeServer {
  server: Server;
  host: ModelHost;
  limits: ServerLimits;
  /** Starts listening; resolves with the bound address. */
  listen(port: number, hostname?: string): Promise<{ port: number; url: string }>;
  /**
   * Stops taking requests (new ones: 503 `shutting-down`), lets those taken in finish for up to
   * `graceMs` (default limits.shutdownGraceMs), answers the rest 503, then closes.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * The HTTP service: `POST /v1/predict`, `POST /v1/prompts`, `GET /v1/health`, `GET /v1/model`, the model's files and
 * its ONNX exports (/v1/onnx, see onnx-exports.ts) for the in-browser mode, the wasm binaries of TF.js (/v1/wasm/) and onnxruntime-web (/v1/ort/), and
 * the web page at `/`, cross-origin isolated. node:http only.
 */
export async function createApeServer(options: ApeServerOptions): Promise<ApeServer> {
  const webDir = options.webDir ?? defaultWebDir();
  const wasmDir = options.wasmDir ?? defaultWasmDir();
  const host = new ModelHost(options.modelDir, {
    ...(options.inputSize !== undefined ? { inputSize: options.inputSize } : {}),
    ...(options.engine !== undefined ? { engine: options.engine } : {}),
    ...(options.log !== undefined ? { log: options.log } : {}),
  });
  const cannotLoad = (error: Error) => {
    throw new Error(`could not load the model from ${options.modelDir}: ${error.message}`);
  };
  const modelFiles = await listServableFiles(options.modelDir, MODEL_FILE_EXTENSIONS).catch(cannotLoad);
  const configPath = join(options.modelDir, CONFIG_FILE);
  const modelConfig = await readFile(configPath, 'utf8')
    .then((text) => parseModelConfig(text, configPath))
    .catch(cannotLoad);
  const modelSize = modelConfig.input.size;
  const inputSize = options.inputSize ?? modelSize;
  // sha256 of config.json and the weights, as Node's export cache keys exports (made once, on first use).
  let hash: Promise<string> | null = null;
  const modelHash = () => {
    hash ??= filesHash([configPath, join(options.modelDir, WEIGHTS_FILE)]);
    return hash;
  };
  // Where the page encodes prompts, by the size of the text tower (read from the weights' header once).
  let encoding: Promise<PromptEncodingStatement> | null = null;
  const promptEncoding = () => {
    encoding ??= textTowerBytes(join(options.modelDir, WEIGHTS_FILE)).then((bytes) =>
      promptEncodingStatement(bytes, options.pageTextTowerLimit ?? DEFAULT_PAGE_TEXT_TOWER_LIMIT),
    );
    return encoding;
  };
  const limits = resolveLimits({
    ...options.limits,
    maxImagePixels: options.limits?.maxImagePixels ?? pixelBudgetFor(inputSize),
  });
  const modelFileNames = new Set(modelFiles.map((f) => f.name));
  const wasmFiles = new Set((await listServableFiles(wasmDir, ['.wasm'])).map((f) => f.name));
  const ortWasmDir = options.ortWasmDir ?? defaultOrtWasmDir();
  const ortWasmFiles = new Set(
    (await listServableFiles(ortWasmDir, ['.mjs', '.wasm'])).map((f) => f.name).filter((n) => ORT_WASM_FILE.test(n)),
  );
  const exports = new ServedExports(host, modelConfig.name, modelHash, {
    sizes: [...new Set([inputSize, modelSize])],
    maxSentences: limits.maxPrompts,
  });
  const examplesDir = options.examplesDir ?? defaultExamplesDir();
  const examples = await listServableFiles(examplesDir, ['.png', '.jpg', '.jpeg']).catch(() => []);
  const exampleNames = new Set(examples.map((f) => f.name));
  /**
   * A job's turn: the image is decoded only now (a waiting request holds its encoded bytes, not
   * pixels), off the HTTP thread (sharp), and its pixels are moved, not copied, to the model
   * thread, whose first step shrinks them to the input size: one full-resolution copy at a time.
   */
  async function runPredict(job: PredictRequest, signal: AbortSignal): Promise<PredictOutcome & { decodeMs: number }> {
    const t0 = performance.now();
    let image: Awaited<ReturnType<typeof decodeImage>>;
    try {
      image = await decodeImage(job.image, { maxPixels: limits.maxImagePixels, source: job.imageName });
    } catch (error) {
      if (error instanceof ImageError) throw imageErrorToHttp(error);
      throw error;
    }
    const decodeMs = performance.now() - t0;
    const outcome = await host.predict(
      {
        image: { ...image, data: ownBytes(image.data) },
        vocabulary: job.vocabulary,
        sentences: job.sentences,
        ...(job.threshold !== undefined ? { threshold: job.threshold } : {}),
        ...(job.semanticThreshold !== undefined ? { semanticThreshold: job.semanticThreshold } : {}),
      },
      signal,
    );
    return { ...outcome, decodeMs };
  }

  // Predictions and prompt encodings wait in one line: the model thread does one at a time.
  const queue = new WorkQueue<ModelTask, unknown>((task, signal) => task(signal), {
    capacity: limits.queueSize,
    timeoutMs: limits.requestTimeoutMs,
  });
  /** `task` in its turn in the queue, its deadline counted from `arrived`. */
  const inTurn = <T>(task: (signal: AbortSignal) => Promise<T>, arrived: number) =>
    queue.submit(task, arrived) as Promise<T>;
  const started = Date.now();
  let served = 0;
  /** Requests taken in and not yet answered; shutdown waits for them. */
  let inFlight = 0;
  let onIdle: (() => void) | null = null;
  let shuttingDown = false;
  const shuttingDownError = () =>
    new HttpError(503, 'shutting-down', 'the server is shutting down; try again elsewhere or later');

  async function predict(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const arrived = performance.now();
    const body = await readBody(request, limits.maxRequestBytes);
    const parsed = parsePredictRequest(body, request.headers['content-type'], limits);
    // Only the header now (format, size, pixel budget): a bad upload is refused before it waits.
    try {
      inspectImage(parsed.image, { maxPixels: limits.maxImagePixels, source: parsed.imageName });
    } catch (error) {
      if (error instanceof ImageError) throw imageErrorToHttp(error);
      throw error;
    }
    const received = performance.now();
    const outcome = await inTurn((signal) => runPredict(parsed, signal), arrived);
    const done = performance.now();
    served++;
    const ms = (v: number) => Math.round(v * 10) / 10;
    const readAndDecode = received - arrived + outcome.decodeMs;
    // Answered during a shutdown: the connection is not kept for another request.
    if (shuttingDown) response.setHeader('connection', 'close');
    sendJson(response, 200, {
      ...outcome.json,
      timing: {
        readAndDecodeMs: ms(readAndDecode),
        queueMs: ms(done - arrived - readAndDecode - outcome.inferenceMs),
        inferenceMs: ms(outcome.inferenceMs),
        totalMs: ms(done - arrived),
      },
    });
  }

  /**
   * `POST /v1/prompts`: the vectors of the texts, for a page that does not hold the text tower
   * (float32, little-endian, row after row, base64), with the model hash they belong to.
   */
  async function encodePrompts(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const arrived = performance.now();
    const body = await readBody(request, limits.maxRequestBytes);
    const texts = parsePromptsRequest(body, request.headers['content-type'], limits);
    const { vectors, dim, encoded } = await inTurn((signal) => host.encodePrompts(texts, signal), arrived);
    sendJson(response, 200, {
      model: { name: modelConfig.name, hash: await modelHash() },
      count: texts.length,
      dim,
      encoded,
      dtype: 'float32',
      vectors: Buffer.from(vectors.buffer, vectors.byteOffset, vectors.byteLength).toString('base64'),
    });
  }

  /** The API, in one table: a path ending in '/' serves the files under it (the rest of the path is the file name). */
  const routes: Route[] = [
    { path: '/v1/predict', method: 'POST', handle: predict },
    { path: PROMPTS_ROUTE, method: 'POST', handle: encodePrompts },
    {
      path: '/v1/health',
      method: 'GET',
      handle: (_request, response) =>
        sendJson(response, 200, {
          status: host.loaded ? 'ok' : 'loading',
          model: host.info?.name ?? null,
          backend: host.info?.backend ?? null,
          inferenceEngine: host.info?.inferenceEngine ?? null,
          queue: queue.stats(),
          engine: host.memory,
          served,
          restarts: host.restarts,
          uptimeS: Math.round((Date.now() - started) / 1000),
        }),
    },
    {
      path: '/v1/model',
      method: 'GET',
      handle: async (_request, response) => {
        const info = await host.start();
        sendJson(response, 200, {
          name: info.name,
          config: info.config,
          backend: info.backend,
          inferenceEngine: info.inferenceEngine,
          hash: await modelHash(),
          promptEncoding: await promptEncoding(),
          files: modelFiles,
          limits,
        });
      },
    },
    {
      path: '/v1/model/files/',
      method: 'GET',
      handle: async (request, response, file) =>
        sendFile(request, response, options.modelDir, file, modelFileNames, {
          etagPrefix: (await modelHash()).slice(0, 16),
        }),
    },
    {
      path: '/v1/onnx',
      method: 'GET',
      handle: async (_request, response) => sendJson(response, 200, await exports.index()),
    },
    {
      path: '/v1/onnx/',
      method: 'GET',
      handle: (request, response, file) =>
        file === 'export'
          ? exports.manifest(request, response)
          : file === 'text'
            ? exports.textManifest(request, response)
            : exports.file(request, response, file),
    },
    { path: '/v1/examples', method: 'GET', handle: (_request, response) => sendJson(response, 200, { examples }) },
    {
      path: '/v1/examples/',
      method: 'GET',
      handle: (request, response, file) => sendFile(request, response, examplesDir, file, exampleNames),
    },
    {
      path: '/v1/wasm/',
      method: 'GET',
      handle: (request, response, file) =>
        sendFile(request, response, wasmDir, file, wasmFiles, { cache: 'max-age=86400' }),
    },
    {
      path: '/v1/ort/',
      method: 'GET',
      handle: (request, response, file) =>
        sendFile(request, response, ortWasmDir, file, ortWasmFiles, { cache: 'max-age=86400' }),
    },
  ];

  async function route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = request.method ?? 'GET';
    const allow = (allowed: Route['method']) => {
      const ok = allowed === 'GET' ? method === 'GET' || method === 'HEAD' : method === allowed;
      const methods = allowed === 'GET' ? 'GET, HEAD' : allowed;
      if (!ok)
        throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${path} (use ${methods})`, {
          allow: methods,
        });
    };
    const match = routes.find((r) => (r.path.endsWith('/') ? path.startsWith(r.path) : path === r.path));
    if (match) {
      allow(match.method);
      return match.handle(request, response, match.path.endsWith('/') ? fileNameIn(path, match.path) : '');
    }
    if (path.startsWith('/v1/')) throw new HttpError(404, 'not-found', `no API route ${path}`);
    allow('GET');
    const name = path === '/' ? 'index.html' : path.slice(1);
    const webFiles = new Set((await listServableFiles(webDir).catch(() => [])).map((f) => f.name));
    if (name === 'index.html' && !webFiles.has(name)) {
      throw new HttpError(
        404,
        'page-not-built',
        `the web page is not built (no ${join(webDir, 'index.html')}); run npm run build`,
      );
    }
    return sendFile(request, response, webDir, name, webFiles);
  }

  function fail(request: IncomingMessage, response: ServerResponse, error: unknown): void {
    const http =
      error instanceof HttpError
        ? error
        : new HttpError(500, 'internal-error', error instanceof Error ? error.message : String(error));
    if (http.status >= 500 && http.status !== 503 && http.status !== 504)
      console.error(`ape serve: ${request.method} ${request.url}: ${http.message}`);
    if (response.headersSent) {
      response.destroy();
      return;
    }
    // After a refused upload the rest of the body is never read: close the connection.
    const close = http.status === 413 || !request.complete || shuttingDown;
    sendJson(response, http.status, errorBody(http), { ...http.headers, ...(close ? { connection: 'close' } : {}) });
  }

  const server = createServer((request, response) => {
    for (const [name, value] of Object.entries(ISOLATION_HEADERS)) response.setHeader(name, value);
    if (shuttingDown) return fail(request, response, shuttingDownError());
    inFlight++;
    response.once('close', () => {
      inFlight--;
      if (inFlight === 0) onIdle?.();
    });
    route(request, response).catch((error: unknown) => fail(request, response, error));
  });
  server.requestTimeout = limits.requestTimeoutMs + 30_000;

  return {
    server,
    host,
    limits,
    listen(port: number, hostname = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, hostname, () => {
          server.off('error', reject);
          const address = server.address();
          const bound = typeof address === 'object' && address ? address.port : port;
          const shown = hostname.includes(':') ? `[${hostname}]` : hostname;
          resolve({ port: bound, url: `http://${shown}:${bound}/` });
        });
      });
    },
    async close(graceMs = limits.shutdownGraceMs) {
      shuttingDown = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Requests taken in may finish (waiting ones too) within the grace period; new ones get 503.
      const idle = () => (inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => (onIdle = resolve)));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const graceOver = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
      const late = (await Promise.race([idle(), graceOver])) === 'late';
      clearTimeout(timer);
      if (late) {
        // Past the grace period: what still waits or runs is answered 503 before the connections go.
        queue.close(shuttingDownError());
        await host.close();
        await Promise.race([idle(), new Promise((resolve) => setTimeout(resolve, 1000))]);
      }
      server.closeAllConnections();
      await closed;
      await host.close();
    },
  };
}
