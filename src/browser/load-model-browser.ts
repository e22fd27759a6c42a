/**
 * A model folder's files in the page, without any Node module: its config.json and tokenizer file
 * downloaded (the weights are read tensor by tensor out of byte ranges: load-model-parts.ts), and
 * an ApeModel built from the bytes of a whole folder. The files are the ones `saveModel` writes;
 * the server hands them out under /v1/model/files/.
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
import type { ApeConfig } from '../modeling/config.js';
import { withParameterValues } from '../nn/module.js';
import { fetchBytes, type DownloadProgress } from './fetch-bytes.js';

export type { DownloadProgress };

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

/** The tokenizer a config names, from its file's bytes (tokenizer.json, or the CLIP merges, plain or gzipped). */
export async function tokenizerFromBytes(config: ApeConfig, bytes: Uint8Array): Promise<TextTokenizer> {
  if (config.text.tokenizer.kind === 'word')
    return parseWordTokenizer(new TextDecoder('utf-8', { fatal: true }).decode(bytes), WORD_TOKENIZER_FILE);
  return new ClipTokenizer(await gunzipText(bytes, tokenizerFileName(config)), {
    contextLength: config.text.encoder.contextLength,
  });
}

/** An ApeModel from the bytes of its folder's files. */
export async function modelFromBytes(files: ModelBytes): Promise<ApeModel> {
  const config = parseModelConfig(files.config);
  const tokenizer = await tokenizerFromBytes(config, files.tokenizer);
  // Every parameter is assigned from the weights (checkWeights): random initial values would be wasted.
  const model = withParameterValues('zeros', () => new ApeModel(config, tokenizer));
  try {
    assignWeightBytes(model, files.weights);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** A model folder's config and tokenizer as downloaded (everything but the weights, which are read by ranges). */
export type FetchedModelText = Omit<ModelBytes, 'weights'>;

/** The URL of a file of the model folder served at `filesUrl` (e.g. '/v1/model/files/'). */
export function modelFileUrl(filesUrl: string, name: string): string {
  return `${filesUrl.endsWith('/') ? filesUrl : `${filesUrl}/`}${encodeURIComponent(name)}`;
}

/** Downloads a model folder's config.json and tokenizer file from `filesUrl`. */
export async function fetchModelText(filesUrl: string, onProgress?: DownloadProgress): Promise<FetchedModelText> {
  const { bytes: configBytes } = await fetchBytes(modelFileUrl(filesUrl, CONFIG_FILE), CONFIG_FILE, { onProgress });
  const configText = new TextDecoder().decode(configBytes);
  const tokenizerName = tokenizerFileName(parseModelConfig(configText));
  const { bytes: tokenizer } = await fetchBytes(modelFileUrl(filesUrl, tokenizerName), tokenizerName, { onProgress });
  return { config: configText, tokenizer };
}
