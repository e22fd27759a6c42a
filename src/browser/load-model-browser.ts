/**
 * Builds an ApeModel from the bytes of a model folder (config.json, model.safetensors and the
 * tokenizer file) without any Node module, so the page can run the model in the browser. The
 * files are the ones `saveModel` writes; the server hands them out under /v1/model/files/.
 */
import { ApeModel } from '../inference/ape-model.js';
import {
  CONFIG_FILE,
  WEIGHTS_FILE,
  WORD_TOKENIZER_FILE,
  assignWeights,
  parseModelConfig,
  parseWordTokenizer,
  tokenizerFileName,
} from '../inference/model-folder.js';
import { readSafetensors } from '../io/safetensors.js';
import { ClipTokenizer } from '../text/clip-tokenizer.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import { concatArrays } from '../util/concat-arrays.js';

// The folder format (names, config checks, weight checks) is model-folder.ts, shared with the Node loader.
export { CONFIG_FILE, WEIGHTS_FILE, WORD_TOKENIZER_FILE, parseModelConfig, tokenizerFileName };

/** Largest decompressed CLIP merges file accepted (the real one is 1.7 MB). */
const MAX_MERGES_BYTES = 64 * 1024 * 1024;

async function gunzipText(bytes: Uint8Array, source: string): Promise<string> {
  const gzipped = bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  if (!gzipped) return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip'));
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > MAX_MERGES_BYTES) {
      await reader.cancel();
      throw new Error(`${source}: decompresses to more than ${MAX_MERGES_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return new TextDecoder('utf-8', { fatal: true }).decode(concatArrays(Uint8Array, chunks));
}

export interface ModelBytes {
  /** config.json as text. */
  config: string;
  /** model.safetensors. */
  weights: Uint8Array;
  /** tokenizer.json (word tokenizer) or the CLIP merges file (plain or gzipped). */
  tokenizer: Uint8Array;
}

/** Assigns every parameter from safetensors bytes; a missing, extra or misshapen tensor is an error naming it. */
export function assignWeightBytes(model: ApeModel, bytes: Uint8Array, source = WEIGHTS_FILE): void {
  assignWeights(model, readSafetensors(bytes, source), source);
}

/** An ApeModel from the bytes of its folder's files. */
export async function modelFromBytes(files: ModelBytes): Promise<ApeModel> {
  const config = parseModelConfig(files.config);
  let tokenizer: TextTokenizer;
  if (config.text.tokenizer.kind === 'word') {
    tokenizer = parseWordTokenizer(
      new TextDecoder('utf-8', { fatal: true }).decode(files.tokenizer),
      WORD_TOKENIZER_FILE,
    );
  } else {
    const name = tokenizerFileName(config);
    tokenizer = new ClipTokenizer(await gunzipText(files.tokenizer, name), {
      contextLength: config.text.encoder.contextLength,
    });
  }
  const model = new ApeModel(config, tokenizer);
  try {
    assignWeightBytes(model, files.weights);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** Progress of a download: bytes so far and expected (0 when the server does not say). */
export type DownloadProgress = (file: string, loaded: number, total: number) => void;

async function fetchBytes(url: string, name: string, onProgress?: DownloadProgress): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${name}: the server answered ${response.status} ${response.statusText}`);
  const total = Number(response.headers.get('content-length') ?? 0);
  if (!response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress?.(name, loaded, total);
  }
  const all = new Uint8Array(loaded);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.length;
  }
  return all;
}

/** A model folder's files as downloaded, with config.json's bytes as they came (what the model hash covers). */
export interface FetchedModelFiles extends ModelBytes {
  configBytes: Uint8Array;
}

/** Downloads a model folder's files from `filesUrl` (e.g. '/v1/model/files/'). */
export async function fetchModelFiles(filesUrl: string, onProgress?: DownloadProgress): Promise<FetchedModelFiles> {
  const base = filesUrl.endsWith('/') ? filesUrl : `${filesUrl}/`;
  const configBytes = await fetchBytes(`${base}${CONFIG_FILE}`, CONFIG_FILE, onProgress);
  const configText = new TextDecoder().decode(configBytes);
  const config = parseModelConfig(configText);
  const tokenizerName = tokenizerFileName(config);
  const [tokenizer, weights] = await Promise.all([
    fetchBytes(`${base}${encodeURIComponent(tokenizerName)}`, tokenizerName, onProgress),
    fetchBytes(`${base}${WEIGHTS_FILE}`, WEIGHTS_FILE, onProgress),
  ]);
  return { config: configText, configBytes, weights, tokenizer };
}

/**
 * Downloads a model folder from `filesUrl` (e.g. '/v1/model/files/') and builds the model.
 * The engine must be initialised first.
 */
export async function fetchModel(filesUrl: string, onProgress?: DownloadProgress): Promise<ApeModel> {
  return modelFromBytes(await fetchModelFiles(filesUrl, onProgress));
}

/**
 * The hash Node keys its ONNX export cache with (sha256 over config.json, then the weights; see
 * filesHash), or null where the page has no Web Crypto (a plain-http page on another host).
 */
export async function modelFilesHash(files: FetchedModelFiles): Promise<string | null> {
  if (!globalThis.crypto?.subtle) return null;
  const digest = await crypto.subtle.digest(
    'SHA-256',
    concatArrays(Uint8Array, [files.configBytes, files.weights]) as Uint8Array<ArrayBuffer>,
  );
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}
