/**
 * The model's ONNX exports, served to the web page so that it runs the graphs Node made (cached
 * next to the model, see docs/onnx.md) instead of recording its own with the whole model on TF.js:
 *
 * - `GET /v1/onnx`: the model's name and hash (what the page checks each manifest against);
 * - `GET /v1/onnx/export?size=S&valid=HxW&sentences=N`: the manifest of that shape's export, found
 *   in the cache or made now by the model thread (once per shape, as predict does);
 * - `GET /v1/onnx/text`: the manifest of the text tower's export (its graphs, one per bucket of
 *   rows and positions, and their shared weights file), found in the cache or made now, so that the
 *   page encodes prompts without the tower's TF.js weights;
 * - `GET /v1/onnx/KEY/FILE`: a file that export's manifest names (segments, graphs, external
 *   data), with byte ranges, and ETags keyed by the model hash. Nothing else in any folder can be
 *   asked for.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { exportKey, MANIFEST_FILE, type ExportShape } from '../onnx/export-network.js';
import { TEXT_MANIFEST_FILE } from '../onnx/text-export.js';
import { OPSET } from '../onnx/kernel-ops.js';
import { HttpError } from './http-error.js';
import type { ModelHost } from './model-host.js';
import { sendFile } from './static-files.js';
import type { ExportFolderInfo, ExportRequest } from './worker-protocol.js';

/** The shapes the server exports for the page. */
export interface ExportShapeLimits {
  /** Input sides accepted: the model's own and the one the server runs at. */
  sizes: readonly number[];
  /** Most sentences (the server's prompt limit). */
  maxSentences: number;
}

const QUERY_FIELDS = ['size', 'sentences', 'vocabulary'];

/**
 * The export shape a query asks for, checked: `size` one of the accepted input sides, `valid` the
 * image's HxW inside it (default the whole input), `sentences` 0..maxSentences, `vocabulary` 0 if
 * given (vocabulary prompts are scored outside the graph). 400 naming the field otherwise.
 */
export function exportShapeFromQuery(query: URLSearchParams, limits: ExportShapeLimits): ExportShape {
  const bad = (field: string, why: string): never => {
    throw new HttpError(400, 'bad-export-shape', `export shape: ${field} ${why}`);
  };
  for (const key of query.keys())
    if (!QUERY_FIELDS.includes(key)) bad(`'${key.slice(0, 40)}'`, `is not a field (${QUERY_FIELDS.join(', ')})`);
  const integer = (field: string, text: string | null, min: number, max: number): number => {
    if (text === null) return bad(field, 'is missing');
    const value = /^\d{1,9}$/.test(text) ? Number(text) : Number.NaN;
    if (!(value >= min && value <= max))
      bad(field, `must be an integer from ${min} to ${max}, got '${text.slice(0, 40)}'`);
    return value;
  };
  const sizeText = query.get('size');
  const size = integer('size', sizeText, 1, Math.max(...limits.sizes));
  if (!limits.sizes.includes(size))
    bad('size', `must be ${limits.sizes.join(' or ')} (this model's input), got ${size}`);
  const sentences = integer('sentences', query.get('sentences') ?? '0', 0, limits.maxSentences);
  integer('vocabulary', query.get('vocabulary') ?? '0', 0, 0);
  return { size, vocabulary: 0, sentences };
}

export class ServedExports {
  /** The folder each export key was last found in, with its files: what /v1/onnx/KEY/FILE may serve. */
  private readonly folders = new Map<string, ExportFolderInfo>();
  /** Exports being found or made now, by key ('text' for the text tower's; concurrent requests share the work). */
  private readonly asking = new Map<string, Promise<ExportFolderInfo>>();

  constructor(
    private readonly host: ModelHost,
    private readonly modelName: string,
    private readonly modelHash: () => Promise<string>,
    private readonly limits: ExportShapeLimits,
  ) {}

  /** `GET /v1/onnx`: what the page checks a manifest against (without waiting for the model thread to load). */
  async index(): Promise<unknown> {
    return {
      model: { name: this.modelName, hash: await this.modelHash() },
      opset: OPSET,
      manifest: MANIFEST_FILE,
      textManifest: TEXT_MANIFEST_FILE,
    };
  }

  /** `GET /v1/onnx/export?...`: the manifest of the export of the shape the query asks for. */
  async manifest(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const shape = exportShapeFromQuery(requestQuery(request), this.limits);
    await this.sendManifest(request, response, exportKey(shape), { kind: 'network', shape });
  }

  /** `GET /v1/onnx/text`: the manifest of the text tower's export (one per model: it takes no query). */
  async textManifest(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const [field] = requestQuery(request).keys();
    if (field !== undefined)
      throw new HttpError(
        400,
        'bad-export-shape',
        `text export: '${field.slice(0, 40)}' is not a field (it takes none)`,
      );
    await this.sendManifest(request, response, 'text', { kind: 'text' });
  }

  /** `GET /v1/onnx/KEY/FILE`: one of the files the manifest of KEY names, once the manifest was asked for. */
  async file(request: IncomingMessage, response: ServerResponse, path: string): Promise<void> {
    const parts = path.split('/');
    const notFound = () =>
      new HttpError(404, 'not-found', `no ONNX export file '${path.slice(0, 200)}' here (ask for its manifest first)`);
    if (parts.length !== 2) throw notFound();
    const folder = this.folders.get(parts[0]!);
    if (!folder) throw notFound();
    await this.send(request, response, folder, parts[1]!);
  }

  /** Finds or makes the export (`asking` is keyed by `job`, concurrent requests share the work) and sends its manifest. */
  private async sendManifest(
    request: IncomingMessage,
    response: ServerResponse,
    job: string,
    wanted: ExportRequest,
  ): Promise<void> {
    let asked = this.asking.get(job);
    if (!asked) {
      asked = this.host.exportFolder(wanted);
      this.asking.set(job, asked);
      void asked
        .then((folder) => this.folders.set(folder.key, folder))
        .catch(() => undefined)
        .finally(() => this.asking.delete(job));
    }
    const folder = await asked;
    await this.send(request, response, folder, folder.manifestFile);
  }

  private send(request: IncomingMessage, response: ServerResponse, folder: ExportFolderInfo, name: string) {
    return sendFile(request, response, folder.dir, name, new Set(folder.files.map(([file]) => file)), {
      etagPrefix: folder.modelHash.slice(0, 16),
    });
  }
}

function requestQuery(request: IncomingMessage): URLSearchParams {
  return new URL(request.url ?? '/', 'http://localhost').searchParams;
}
