/**
 * A model in the page, its weights read out of model.safetensors tensor by tensor: the whole model,
 * its prompt side (text tower and last classifier) or its classifier alone (ApeNetwork parts; the
 * parts left out are empty placeholders, neither downloaded nor held). The tensors come in byte
 * ranges of at most 64 MiB, each assigned before the next is fetched, so no array ever holds the
 * file (3.09 GB for ape-ti); a server that ignores ranges sends the file once, read as a stream and
 * assigned as it passes. Where the server names the model's hash, the first answer's version (its
 * ETag) must carry it and every later range is asked for with If-Match on it: the bytes are those
 * of the model the server's exports are checked against.
 */
import { ApeModel } from '../inference/ape-model.js';
import { assignParameter, checkWeights, parseModelConfig, WEIGHTS_FILE } from '../inference/model-folder.js';
import {
  decodeTensor,
  MAX_HEADER_BYTES,
  parseSafetensorsHeader,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
  type TensorData,
} from '../io/safetensors.js';
import type { NetworkParts } from '../modeling/ape-network.js';
import { isPlaceholder, withParameterValues } from '../nn/module.js';
import { getOrThrow } from '../util/checked.js';
import {
  announcedLength,
  BodyStream,
  fetchRange,
  rangeFileSize,
  readBody,
  requestRange,
  type DownloadProgress,
} from './fetch-bytes.js';
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

export interface LoadPartsOptions {
  parts: NetworkParts;
  /** The model hash the server names (its /v1/onnx): the weights' version must carry it. Null: not checked. */
  modelHash: string | null;
  onProgress?: DownloadProgress | undefined;
}

export interface LoadedParts {
  model: ApeModel;
  /** Bytes of model.safetensors downloaded, and its size. */
  weightBytes: number;
  fileBytes: number;
}

/** The header length the first 8 bytes of a safetensors file give (a u64; Infinity when it exceeds 32 bits). */
function headerLengthOf(first: Uint8Array): number {
  const view = new DataView(first.buffer, first.byteOffset, 8);
  return view.getUint32(4, true) === 0 ? view.getUint32(0, true) : Number.POSITIVE_INFINITY;
}

/** A strong ETag, sent back as If-Match on every later range (a weak one cannot be). */
function sameVersionHeaders(etag: string): Record<string, string> {
  return etag && !etag.startsWith('W/') ? { 'if-match': etag } : {};
}

/**
 * Builds the model's `parts` from `text` (config and tokenizer) and the weights they need, from the
 * model files at `filesUrl` (see the file's comment).
 */
export async function loadModelParts(
  filesUrl: string,
  text: FetchedModelText,
  options: LoadPartsOptions,
): Promise<LoadedParts> {
  const { parts, modelHash, onProgress } = options;
  const config = parseModelConfig(text.config);
  const tokenizer = await tokenizerFromBytes(config, text.tokenizer);
  const url = modelFileUrl(filesUrl, WEIGHTS_FILE);
  const first = await requestRange(url, WEIGHTS_FILE, 0, 7);
  const etag = first.response.headers.get('etag') ?? '';
  if (modelHash !== null && !etag.startsWith(`"${modelHash.slice(0, 16)}.`)) {
    await first.response.body?.cancel();
    throw new Error(
      `${WEIGHTS_FILE}: the server sends version ${etag || '(no ETag)'}, not one of the model it names (hash ${modelHash.slice(0, 12)})`,
    );
  }
  // The model is made only once the file's header was read: zeros (no random numbers) for what is
  // assigned, placeholders for the parts left out.
  const make = () => withParameterValues('zeros', () => new ApeModel(config, tokenizer, 0, parts));
  if (!first.ranged) {
    const total = announcedLength(first.response) ?? 0;
    return readThrough(new BodyStream(first.response, WEIGHTS_FILE, onProgress, total), first.response, make);
  }

  const fileBytes = rangeFileSize(first.response, WEIGHTS_FILE);
  const start = await readBody(first.response, WEIGHTS_FILE, {});
  const sameVersion = sameVersionHeaders(etag);
  const headerLength = headerLengthOf(start);
  // parseSafetensorsHeader names the problem with a header length out of bounds.
  const head =
    headerLength <= MAX_HEADER_BYTES && 8 + headerLength <= fileBytes
      ? (await fetchRange(url, WEIGHTS_FILE, 0, 8 + headerLength - 1, { headers: sameVersion })).bytes
      : start;
  const read = start.length + (head === start ? 0 : head.length);
  const header = parseSafetensorsHeader(head, fileBytes, WEIGHTS_FILE);
  const model = make();
  try {
    const wanted = wantedTensors(model, header);
    const total = wanted.tensors.reduce((a, t) => a + t.end - t.begin, 0);
    let done = 0;
    for (const run of tensorRuns(wanted.tensors)) {
      const { bytes } = await fetchRange(
        url,
        WEIGHTS_FILE,
        header.dataStart + run.start,
        header.dataStart + run.end - 1,
        {
          headers: sameVersion,
          onProgress,
          progressBase: done,
          progressTotal: total,
        },
      );
      for (const t of run.tensors)
        wanted.assign(t, decodeTensor(t, bytes.subarray(t.begin - run.start, t.end - run.start)));
      done += run.end - run.start;
    }
    return { model, weightBytes: read + total, fileBytes };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/**
 * The tensors of `header` that `model` has real parameters for, checked: every tensor of the file
 * a parameter of the model (placeholders included), every real parameter in the file, of its shape.
 */
function wantedTensors(
  model: ApeModel,
  header: SafetensorsHeader,
): { tensors: SafetensorsTensorInfo[]; assign: (t: SafetensorsTensorInfo, data: TensorData) => void } {
  const all = model.namedParameters();
  for (const t of header.tensors)
    if (!all.has(t.name))
      throw new Error(`${WEIGHTS_FILE}: tensor '${t.name}' is not a parameter of the '${model.config.name}' model`);
  const params = new Map([...all].filter(([, v]) => !isPlaceholder(v)));
  const tensors = header.tensors.filter((t) => params.has(t.name));
  checkWeights(params, tensors, WEIGHTS_FILE, model.config.name);
  return {
    tensors,
    assign: (t, data) => assignParameter(getOrThrow(params, t.name, WEIGHTS_FILE), { data }),
  };
}

/** The weights from a server that sent the whole file: read in order, each wanted tensor assigned as it passes. */
async function readThrough(body: BodyStream, response: Response, make: () => ApeModel): Promise<LoadedParts> {
  const announced = announcedLength(response);
  let model: ApeModel | null = null;
  try {
    const size = await body.read(8);
    const headerLength = headerLengthOf(size);
    let head = size;
    if (headerLength <= MAX_HEADER_BYTES) {
      head = new Uint8Array(8 + headerLength);
      head.set(size);
      head.set(await body.read(headerLength), 8);
    }
    const fileBytes = announced ?? Number.MAX_SAFE_INTEGER;
    const header = parseSafetensorsHeader(head, fileBytes, WEIGHTS_FILE);
    model = make();
    const wanted = wantedTensors(model, header);
    let at = 0;
    for (const t of [...wanted.tensors].sort((a, b) => a.begin - b.begin)) {
      await body.skip(t.begin - at);
      wanted.assign(t, decodeTensor(t, await body.read(t.end - t.begin)));
      at = t.end;
    }
    await body.cancel();
    return { model, weightBytes: body.received, fileBytes: announced ?? body.received };
  } catch (e) {
    model?.dispose();
    await body.cancel().catch(() => undefined);
    throw e;
  }
}
