/**
 * The prompt side of a model in the page, for when the network itself runs as the server's ONNX
 * export: the text tower and the last classifier (ApeNetwork parts 'prompts'; the detector's
 * parameters are empty placeholders), their weights read out of model.safetensors by byte ranges,
 * so the detector's weights are neither downloaded nor held. Every range is asked for with
 * If-Match on the version the first answer named, and that version (the server's ETag) must carry
 * the model hash the server reports: the bytes are those of the model the exports are checked against.
 */
import { ApeModel } from '../inference/ape-model.js';
import { assignParameter, checkWeights, parseModelConfig, WEIGHTS_FILE } from '../inference/model-folder.js';
import {
  decodeTensor,
  MAX_HEADER_BYTES,
  parseSafetensorsHeader,
  type SafetensorsTensorInfo,
} from '../io/safetensors.js';
import { isPlaceholder, withParameterValues } from '../nn/module.js';
import { getOrThrow } from '../util/checked.js';
import { fetchRange, rangeFileSize, type DownloadProgress } from './fetch-bytes.js';
import { modelFileUrl, tokenizerFromBytes, type FetchedModelText } from './load-model-browser.js';

/** Largest byte range asked for at once (tensors are assigned range by range, so the page holds one at a time). */
const MAX_RANGE_BYTES = 64 * 1024 * 1024;

/** Tensors that lie back to back in the file, fetched as one range. */
interface TensorRun {
  start: number;
  end: number;
  tensors: SafetensorsTensorInfo[];
}

/** `wanted` tensors (in file order) grouped into runs of adjacent ones, each at most maxBytes unless one tensor is larger. */
export function tensorRuns(wanted: readonly SafetensorsTensorInfo[], maxBytes = MAX_RANGE_BYTES): TensorRun[] {
  const runs: TensorRun[] = [];
  for (const t of [...wanted].sort((a, b) => a.begin - b.begin)) {
    const last = runs[runs.length - 1];
    if (last && last.end === t.begin && t.end - last.start <= maxBytes) {
      last.end = t.end;
      last.tensors.push(t);
    } else {
      runs.push({ start: t.begin, end: t.end, tensors: [t] });
    }
  }
  return runs;
}

export interface PromptSide {
  model: ApeModel;
  /** Bytes of model.safetensors read, and its size. */
  weightBytes: number;
  fileBytes: number;
}

/**
 * Builds the model's prompt side from `text` (config and tokenizer) and the weights it needs,
 * fetched by ranges from the model files at `filesUrl`; `modelHash` is the hash the server names.
 */
export async function loadPromptSide(
  filesUrl: string,
  text: FetchedModelText,
  modelHash: string,
  onProgress?: DownloadProgress,
): Promise<PromptSide> {
  const config = parseModelConfig(text.config);
  const tokenizer = await tokenizerFromBytes(config, text.tokenizer);
  const url = modelFileUrl(filesUrl, WEIGHTS_FILE);
  const first = await fetchRange(url, WEIGHTS_FILE, 0, 7);
  const etag = first.response.headers.get('etag') ?? '';
  if (!etag.startsWith(`"${modelHash.slice(0, 16)}.`))
    throw new Error(
      `${WEIGHTS_FILE}: the server sends version ${etag || '(no ETag)'}, not one of the model it names (hash ${modelHash.slice(0, 12)})`,
    );
  const fileBytes = rangeFileSize(first.response, WEIGHTS_FILE);
  const sameVersion = { 'if-match': etag };
  const view = new DataView(first.bytes.buffer, first.bytes.byteOffset, 8);
  const headerLength = view.getUint32(4, true) === 0 ? view.getUint32(0, true) : Number.POSITIVE_INFINITY;
  // parseSafetensorsHeader names the problem with a header length out of bounds.
  const head =
    headerLength <= MAX_HEADER_BYTES && 8 + headerLength <= fileBytes
      ? (await fetchRange(url, WEIGHTS_FILE, 0, 8 + headerLength - 1, { headers: sameVersion })).bytes
      : first.bytes;
  const header = parseSafetensorsHeader(head, fileBytes, WEIGHTS_FILE);

  // The model is made only once the file is known to be one: zeros (no random numbers) for what
  // is assigned, placeholders for the detector.
  const model = withParameterValues('zeros', () => new ApeModel(config, tokenizer, 0, 'prompts'));
  try {
    const params = new Map([...model.namedParameters()].filter(([, v]) => !isPlaceholder(v)));
    const wanted = header.tensors.filter((t) => params.has(t.name));
    checkWeights(params, wanted, WEIGHTS_FILE, config.name);
    const total = wanted.reduce((a, t) => a + t.end - t.begin, 0);
    let done = 0;
    for (const run of tensorRuns(wanted)) {
      const { bytes } = await fetchRange(
        url,
        WEIGHTS_FILE,
        header.dataStart + run.start,
        header.dataStart + run.end - 1,
        { headers: sameVersion, onProgress, progressBase: done, progressTotal: total },
      );
      for (const t of run.tensors) {
        const data = decodeTensor(t, bytes.subarray(t.begin - run.start, t.end - run.start));
        assignParameter(getOrThrow(params, t.name, WEIGHTS_FILE), { data });
      }
      done += run.end - run.start;
    }
    return { model, weightBytes: total + head.length, fileBytes };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
