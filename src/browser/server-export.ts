/**
 * The server's ONNX exports, fetched by the page (`ape serve` finds them in the cache Node keeps
 * next to the model, or makes them): the network's of one shape and the text tower's. Each
 * manifest is checked against the model the page loaded (its hash) and the shape it needs, then
 * each graph and external data file against the sizes and fingerprint the manifest records.
 */
import type { ApeConfig } from '../modeling/config.js';
import { exportKey, type ExportShape, type OnnxExportManifest } from '../onnx/export-network.js';
import { chunkEdges, dataFingerprint } from '../onnx/external-data.js';
import { OPSET } from '../onnx/kernel-ops.js';
import { checkTextManifest } from '../onnx/ort-text-tower.js';
import { checkManifest } from '../onnx/segmented-network.js';
import { textExportKey, textExportShape, type TextExportManifest } from '../onnx/text-export.js';
import { fetchBytes, type DownloadProgress } from './fetch-bytes.js';

/** An export's graphs in memory: the manifest, each segment's .onnx bytes and its external data (or null). */
export interface ExportGraphs {
  manifest: OnnxExportManifest;
  files: Uint8Array[];
  data: (Uint8Array | null)[];
}

/**
 * Why an export is not taken, completing "the server's ONNX export for KEY ..." or "the server's
 * ONNX text export ..." (a message the page shows when it makes do without it).
 */
export class ExportRefused extends Error {
  override name = 'ExportRefused';
}

/** The query of `GET /v1/onnx/export` for a shape. */
export function exportQuery(shape: ExportShape): string {
  return new URLSearchParams({
    size: String(shape.size),
    sentences: String(shape.sentences),
    vocabulary: String(shape.vocabulary),
  }).toString();
}

/** The manifest the server answers at `url`, or ExportRefused saying why there is none. */
async function fetchManifest(url: string): Promise<unknown> {
  const response = await fetch(url);
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const reason = (body as { error?: { message?: string } } | null)?.error?.message;
    throw new ExportRefused(`is not available (the server answered ${response.status}${reason ? `: ${reason}` : ''})`);
  }
  return body;
}

/** `check()`, its error turned into ExportRefused. */
function usable<M>(check: () => M): M {
  try {
    return check();
  } catch (e) {
    throw new ExportRefused(`is not usable (${(e as Error).message})`);
  }
}

/** Refuses a manifest made from weights other than `modelHash`. */
function checkModelHash(manifest: { model?: { hash?: unknown } }, modelHash: string): void {
  const theirs = String(manifest.model?.hash);
  if (theirs !== modelHash)
    throw new ExportRefused(
      `was made from other weights (model hash ${theirs.slice(0, 12)}; this page's model is ${modelHash.slice(0, 12)})`,
    );
}

/** A graph file of the export, refused unless it has the size its manifest records (where it records one). */
async function fetchGraph(
  url: string,
  file: string,
  bytes: number | undefined,
  onProgress?: DownloadProgress,
): Promise<Uint8Array> {
  const { bytes: got } = await fetchBytes(url, file, { onProgress });
  if (bytes !== undefined && got.length !== bytes)
    throw new ExportRefused(`has a ${file} of ${got.length} bytes; its manifest says ${bytes}`);
  return got;
}

/** An external data file of the export, refused unless it has the size and fingerprint the export wrote. */
async function fetchData(
  url: string,
  expected: { file: string; bytes: number; fingerprint: string },
  onProgress?: DownloadProgress,
): Promise<Uint8Array> {
  const { bytes: weights } = await fetchBytes(url, expected.file, { onProgress });
  const { head, tail } = chunkEdges([weights], weights.length);
  const got = dataFingerprint(head, tail, weights.length);
  if (got !== expected.fingerprint)
    throw new ExportRefused(
      `has a ${expected.file} that is not the one the export wrote (fingerprint ${got}, expected ${expected.fingerprint})`,
    );
  return weights;
}

const folderOf = (onnxUrl: string) => (onnxUrl.endsWith('/') ? onnxUrl : `${onnxUrl}/`);

/** The URL of a file of the export `key` in the server's ONNX folder. */
const exportFileUrl = (onnxUrl: string, key: string, name: string) =>
  `${folderOf(onnxUrl)}${encodeURIComponent(key)}/${encodeURIComponent(name)}`;

/**
 * Fetches the export of `shape` from the server's ONNX folder `onnxUrl` (e.g. '/v1/onnx/'):
 * refused (ExportRefused) when the server has none, or it was made from weights other than
 * `modelHash`, for another shape, or a file differs from what the manifest records.
 */
export async function fetchServerExport(
  onnxUrl: string,
  shape: ExportShape,
  modelHash: string,
  onProgress?: DownloadProgress,
): Promise<ExportGraphs> {
  const key = exportKey(shape);
  const body = await fetchManifest(`${folderOf(onnxUrl)}export?${exportQuery(shape)}`);
  const manifest = usable(() => checkManifest(body, 'its manifest'));
  checkModelHash(manifest, modelHash);
  if (!manifest.shape || exportKey(manifest.shape) !== key)
    throw new ExportRefused(`is for ${manifest.shape ? exportKey(manifest.shape) : 'no recorded shape'}, not ${key}`);
  const url = (name: string) => exportFileUrl(onnxUrl, key, name);
  const files: Uint8Array[] = [];
  const data: (Uint8Array | null)[] = [];
  for (const segment of manifest.segments) {
    files.push(await fetchGraph(url(segment.file), segment.file, segment.bytes, onProgress));
    data.push(segment.data ? await fetchData(url(segment.data.file), segment.data, onProgress) : null);
  }
  return { manifest, files, data };
}

/** The text tower's export in memory: its manifest, each bucket's .onnx bytes and the weights file they share (or null). */
export interface TextExportGraphs {
  manifest: TextExportManifest;
  files: Uint8Array[];
  data: Uint8Array | null;
}

/**
 * Fetches the text tower's export from the server's ONNX folder (`GET /v1/onnx/text`, then the
 * files it names): refused (ExportRefused) when the server has none, or it was made from weights
 * other than `modelHash`, by another opset, for buckets or a tower other than those of `text` (the
 * model's config), or a file differs from what the manifest records (sizes; the weights file's
 * fingerprint).
 */
export async function fetchServerTextExport(
  onnxUrl: string,
  text: ApeConfig['text'],
  modelHash: string,
  onProgress?: DownloadProgress,
): Promise<TextExportGraphs> {
  const body = await fetchManifest(`${folderOf(onnxUrl)}text`);
  const manifest = usable(() => checkTextManifest(body, 'its manifest'));
  checkModelHash(manifest, modelHash);
  if (manifest.opset !== OPSET) throw new ExportRefused(`has opset ${manifest.opset}; this page reads opset ${OPSET}`);
  const key = textExportKey(textExportShape(text.encoder.contextLength));
  const theirs = textExportKey(manifest.shape);
  if (theirs !== key) throw new ExportRefused(`has buckets ${theirs}, not ${key}`);
  const { contextLength, vocabSize, embedDim } = text.encoder;
  const { tower } = manifest;
  if (
    tower.contextLength !== contextLength ||
    tower.vocabSize !== vocabSize ||
    tower.embedDim !== embedDim ||
    tower.pooling !== text.pooling
  )
    throw new ExportRefused(
      `is of another text tower (${JSON.stringify(tower)}; this page's model has ${JSON.stringify({ contextLength, vocabSize, embedDim, pooling: text.pooling })})`,
    );
  const url = (name: string) => exportFileUrl(onnxUrl, key, name);
  const files: Uint8Array[] = [];
  for (const graph of manifest.graphs)
    files.push(await fetchGraph(url(graph.file), graph.file, graph.bytes, onProgress));
  const data = manifest.data ? await fetchData(url(manifest.data.file), manifest.data, onProgress) : null;
  return { manifest, files, data };
}
