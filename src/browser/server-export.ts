/**
 * The server's ONNX export of one shape, fetched by the page (`ape serve` finds it in the cache
 * Node keeps next to the model, or makes it): the manifest, checked against the model the page
 * loaded (its hash) and the shape it needs, then each segment and its external data file, checked
 * against the sizes and fingerprint the manifest records.
 */
import { exportKey, type ExportShape, type OnnxExportManifest } from '../onnx/export-network.js';
import { chunkEdges, dataFingerprint } from '../onnx/external-data.js';
import { checkManifest } from '../onnx/segmented-network.js';
import { fetchBytes, type DownloadProgress } from './fetch-bytes.js';

/** An export's graphs in memory: the manifest, each segment's .onnx bytes and its external data (or null). */
export interface ExportGraphs {
  manifest: OnnxExportManifest;
  files: Uint8Array[];
  data: (Uint8Array | null)[];
}

/**
 * Why an export is not taken, completing "the server's ONNX export for KEY ..." (a message the
 * page shows before it makes the graphs itself).
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
  const base = onnxUrl.endsWith('/') ? onnxUrl : `${onnxUrl}/`;
  const key = exportKey(shape);
  const response = await fetch(`${base}export?${exportQuery(shape)}`);
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const reason = (body as { error?: { message?: string } } | null)?.error?.message;
    throw new ExportRefused(`is not available (the server answered ${response.status}${reason ? `: ${reason}` : ''})`);
  }
  let manifest: OnnxExportManifest;
  try {
    manifest = checkManifest(body, 'its manifest');
  } catch (e) {
    throw new ExportRefused(`is not usable (${(e as Error).message})`);
  }
  const theirs = String(manifest.model?.hash);
  if (theirs !== modelHash)
    throw new ExportRefused(
      `was made from other weights (model hash ${theirs.slice(0, 12)}; this page's model is ${modelHash.slice(0, 12)})`,
    );
  if (!manifest.shape || exportKey(manifest.shape) !== key)
    throw new ExportRefused(`is for ${manifest.shape ? exportKey(manifest.shape) : 'no recorded shape'}, not ${key}`);
  const fileUrl = (name: string) => `${base}${encodeURIComponent(key)}/${encodeURIComponent(name)}`;
  const files: Uint8Array[] = [];
  const data: (Uint8Array | null)[] = [];
  for (const segment of manifest.segments) {
    const { bytes } = await fetchBytes(fileUrl(segment.file), segment.file, { onProgress });
    if (segment.bytes !== undefined && bytes.length !== segment.bytes)
      throw new ExportRefused(`has a ${segment.file} of ${bytes.length} bytes; its manifest says ${segment.bytes}`);
    files.push(bytes);
    if (!segment.data) {
      data.push(null);
      continue;
    }
    const expected = segment.data;
    const { bytes: weights } = await fetchBytes(fileUrl(expected.file), expected.file, { onProgress });
    const { head, tail } = chunkEdges([weights], weights.length);
    const got = dataFingerprint(head, tail, weights.length);
    if (got !== expected.fingerprint)
      throw new ExportRefused(
        `has a ${expected.file} that is not the one the export wrote (fingerprint ${got}, expected ${expected.fingerprint})`,
      );
    data.push(weights);
  }
  return { manifest, files, data };
}
