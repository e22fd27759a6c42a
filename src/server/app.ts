import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { decodeImage } from '../io/image-node.js';
import { ImageError } from '../io/image-types.js';
import { HttpError, errorBody } from './http-error.js';
import { resolveLimits, type ServerLimits } from './limits.js';
import { ModelHost, type PredictOutcome } from './model-host.js';
import { parsePredictRequest } from './predict-request.js';
import { readBody } from './read-body.js';
import { listServableFiles, sendFile } from './static-files.js';
import { WorkQueue } from './work-queue.js';
import type { WorkerPredictJob } from './worker-protocol.js';

export interface ApeServerOptions {
  /** A model folder (config, safetensors weights, tokenizer). */
  modelDir: string;
  limits?: Partial<ServerLimits>;
  /** The built web page (index.html, app.js, style.css); default: dist/web of this package. */
  webDir?: string;
  /** Where tfjs-backend-wasm's .wasm files are; default: found through module resolution. */
  wasmDir?: string;
  /** Example images offered on the page (PNG/JPEG files); default: examples/ of this package. */
  examplesDir?: string;
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
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer ? data : data.slice();
}

export interface ApeServer {
  server: Server;
  host: ModelHost;
  limits: ServerLimits;
  /** Starts listening; resolves with the bound address. */
  listen(port: number, hostname?: string): Promise<{ port: number; url: string }>;
  close(): Promise<void>;
}

/**
 * The HTTP service: `POST /v1/predict`, `GET /v1/health`, `GET /v1/model`, the model's files for
 * the in-browser mode, the wasm binaries, and the web page at `/`. node:http only.
 */
export async function createApeServer(options: ApeServerOptions): Promise<ApeServer> {
  const limits = resolveLimits(options.limits);
  const webDir = options.webDir ?? defaultWebDir();
  const wasmDir = options.wasmDir ?? defaultWasmDir();
  const host = new ModelHost(options.modelDir);
  const modelFiles = await listServableFiles(options.modelDir, MODEL_FILE_EXTENSIONS).catch((error: Error) => {
    throw new Error(`could not load the model from ${options.modelDir}: ${error.message}`);
  });
  const modelFileNames = new Set(modelFiles.map((f) => f.name));
  const wasmFiles = new Set((await listServableFiles(wasmDir, ['.wasm'])).map((f) => f.name));
  const examplesDir = options.examplesDir ?? defaultExamplesDir();
  const examples = await listServableFiles(examplesDir, ['.png', '.jpg', '.jpeg']).catch(() => []);
  const exampleNames = new Set(examples.map((f) => f.name));
  const queue = new WorkQueue<Omit<WorkerPredictJob, 'type' | 'id'>, PredictOutcome>((job, signal) => host.predict(job, signal), {
    capacity: limits.queueSize,
    timeoutMs: limits.requestTimeoutMs,
  });
  const started = Date.now();
  let served = 0;

  async function predict(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const arrived = performance.now();
    const body = await readBody(request, limits.maxRequestBytes);
    const parsed = parsePredictRequest(body, request.headers['content-type'], limits);
    let image;
    try {
      image = await decodeImage(parsed.image, { maxPixels: limits.maxImagePixels, source: parsed.imageName });
    } catch (error) {
      if (error instanceof ImageError) throw imageErrorToHttp(error);
      throw error;
    }
    const decoded = performance.now();
    const outcome = await queue.submit({
      image: { width: image.width, height: image.height, data: ownBytes(image.data) },
      vocabulary: parsed.vocabulary,
      sentences: parsed.sentences,
      ...(parsed.threshold !== undefined ? { threshold: parsed.threshold } : {}),
      ...(parsed.semanticThreshold !== undefined ? { semanticThreshold: parsed.semanticThreshold } : {}),
    });
    const done = performance.now();
    served++;
    const ms = (v: number) => Math.round(v * 10) / 10;
    sendJson(response, 200, {
      ...outcome.json,
      timing: { readAndDecodeMs: ms(decoded - arrived), queueMs: ms(done - decoded - outcome.inferenceMs), inferenceMs: ms(outcome.inferenceMs), totalMs: ms(done - arrived) },
    });
  }

  async function route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = request.method ?? 'GET';
    const isGet = method === 'GET' || method === 'HEAD';
    const allow = (methods: string, ok: boolean) => {
      if (!ok) throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${path} (use ${methods})`);
    };
    if (path === '/v1/predict') {
      allow('POST', method === 'POST');
      return predict(request, response);
    }
    if (path === '/v1/health') {
      allow('GET', isGet);
      return sendJson(response, 200, {
        status: host.loaded ? 'ok' : 'loading',
        model: host.info?.name ?? null,
        backend: host.info?.backend ?? null,
        queue: queue.stats(),
        engine: host.memory,
        served,
        restarts: host.restarts,
        uptimeS: Math.round((Date.now() - started) / 1000),
      });
    }
    if (path === '/v1/model') {
      allow('GET', isGet);
      const info = await host.start();
      return sendJson(response, 200, { name: info.name, config: info.config, backend: info.backend, files: modelFiles, limits });
    }
    if (path.startsWith('/v1/model/files/')) {
      allow('GET', isGet);
      return sendFile(response, options.modelDir, fileNameIn(path, '/v1/model/files/'), modelFileNames, { head: method === 'HEAD' });
    }
    if (path === '/v1/examples') {
      allow('GET', isGet);
      return sendJson(response, 200, { examples });
    }
    if (path.startsWith('/v1/examples/')) {
      allow('GET', isGet);
      return sendFile(response, examplesDir, fileNameIn(path, '/v1/examples/'), exampleNames, { head: method === 'HEAD' });
    }
    if (path.startsWith('/v1/wasm/')) {
      allow('GET', isGet);
      return sendFile(response, wasmDir, fileNameIn(path, '/v1/wasm/'), wasmFiles, { cache: 'max-age=86400', head: method === 'HEAD' });
    }
    if (path.startsWith('/v1/')) throw new HttpError(404, 'not-found', `no API route ${path}`);
    allow('GET', isGet);
    const name = path === '/' ? 'index.html' : path.slice(1);
    const webFiles = new Set((await listServableFiles(webDir).catch(() => [])).map((f) => f.name));
    if (name === 'index.html' && !webFiles.has(name)) {
      throw new HttpError(404, 'page-not-built', `the web page is not built (no ${join(webDir, 'index.html')}); run npm run build`);
    }
    return sendFile(response, webDir, name, webFiles, { head: method === 'HEAD' });
  }

  const server = createServer((request, response) => {
    route(request, response).catch((error: unknown) => {
      const http =
        error instanceof HttpError ? error : new HttpError(500, 'internal-error', error instanceof Error ? error.message : String(error));
      if (http.status >= 500 && http.status !== 503 && http.status !== 504) console.error(`ape serve: ${request.method} ${request.url}: ${http.message}`);
      if (response.headersSent) {
        response.destroy();
        return;
      }
      // After a refused upload the rest of the body is never read: close the connection.
      const close = http.status === 413 || !request.complete;
      sendJson(response, http.status, errorBody(http), close ? { connection: 'close' } : {});
    });
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
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await host.close();
    },
  };
}
