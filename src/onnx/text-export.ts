/**
 * The text tower as ONNX: token ids -> one prompt vector per row (what ApeNetwork.encodePrompts
 * returns), recorded from the tower's own TF.js code (ClipTextEncoder.encodeTokens) like the
 * network export. A graph has fixed shapes, so an export holds one graph per (rows, positions)
 * bucket: prompts are sorted by token count and run in batches padded to a bucket (extra rows
 * repeat a real one and are dropped; extra positions lie after every end token, which the causal
 * mask keeps from reaching the pooled position). All graphs of an export share one weights file.
 */
import { tf } from '../engine/engine.js';
import type { ClipTextEncoder, TextPooling } from '../text/clip-text-transformer.js';
import {
  type DataChunk,
  type DeferredValues,
  encodeOnnxModel,
  externalizeInitializers,
  type OnnxModel,
} from './onnx-model.js';
import type { ExportProgress } from './export-progress.js';
import { chunkEdges, dataFingerprint } from './external-data.js';
import { recordKernels } from './kernel-recorder.js';
import { segmentRecording, type TensorSpec } from './segments.js';
import { fuseLayerNorms } from './fuse-layer-norm.js';
import { OPSET } from './kernel-ops.js';
import { getOrThrow, required } from '../util/checked.js';

export const TEXT_MANIFEST_FILE = 'onnx-text-export.json';
export const TEXT_MANIFEST_FORMAT = 'ape-onnx-text';
/** The weights file the graphs of a text export share. */
export const TEXT_DATA_FILE = 'text.onnx.data';

/** The buckets an export is made for: rows per run and positions per row (each list ascending). */
export interface TextExportShape {
  batch: number[];
  lengths: number[];
}

/** Rows per run: one (a single new sentence costs one row), a few, and many (a vocabulary). */
export const TEXT_BATCH_BUCKETS = [1, 8, 64];

/**
 * The buckets for a tower of `contextLength` positions: lengths 3, 6, 12, 24, ... below it, then the
 * whole context (a one-word name is 3 positions: start, word, end).
 */
export function textExportShape(contextLength: number, batch: number[] = TEXT_BATCH_BUCKETS): TextExportShape {
  const lengths: number[] = [];
  for (let l = 3; l < contextLength; l *= 2) lengths.push(l);
  return { batch: [...batch], lengths: [...lengths, contextLength] };
}

/** The folder name of a text export in a cache (next to the network's exports). */
export function textExportKey(shape: TextExportShape): string {
  return `text-b${shape.batch.join('.')}-l${shape.lengths.join('.')}`;
}

export interface TextGraphEntry {
  batch: number;
  length: number;
  file: string;
  /** Its output: [batch, embedDim] one vector per row. */
  output: string;
  /** The .onnx file's size (a truncated file is caught before ONNX Runtime reads it). */
  bytes: number;
}

export interface TextExportManifest {
  format: typeof TEXT_MANIFEST_FORMAT;
  version: 1;
  opset: number;
  model: { name: string; hash: string };
  shape: TextExportShape;
  /** What the host side needs to prepare rows (textTokenBatch) and read the output. */
  tower: { contextLength: number; vocabSize: number; embedDim: number; pooling: TextPooling };
  /** Graph inputs: ids [rows * length] int32, pooling weights [rows, length, 1]. */
  inputs: { ids: string; poolWeights: string };
  graphs: TextGraphEntry[];
  /** The shared weights file (size and fingerprint, as a network segment's), or null when each graph holds its weights. */
  data: { file: string; bytes: number; fingerprint: string } | null;
}

export interface TextExport {
  manifest: TextExportManifest;
  /** The .onnx bytes of each graph, in manifest order. */
  files: Uint8Array[];
  /** The shared weights file as chunks (in order), or null. */
  data: DataChunk[] | null;
}

const IDS_INPUT = 'ids';
const POOL_INPUT = 'pool_weights';

/**
 * One graph of the tower for `rows` x `length`, from a recording of encodeTokens (shapes only by
 * default: the graph needs the kernels, not the numbers). `weightData` gives each weight's values.
 */
export function textGraph(
  encoder: ClipTextEncoder,
  rows: number,
  length: number,
  weightData: (name: string) => Float32Array | DeferredValues,
  compute: 'full' | 'shapes' = 'shapes',
): { model: OnnxModel; output: string; inputs: TensorSpec[] } {
  if (!(Number.isInteger(rows) && rows > 0 && Number.isInteger(length) && length > 0))
    throw new Error(`exportTextTower: a bucket must be positive integers, got ${rows} rows x ${length} positions`);
  const ids = tf.zeros([rows * length], 'int32') as tf.Tensor1D;
  const weights = tf.zeros([rows, length, 1]) as tf.Tensor3D;
  let recorded: ReturnType<typeof recordKernels<tf.Tensor2D>>;
  try {
    recorded = recordKernels(
      () => encoder.encodeTokens(ids, weights)[0],
      new Map<tf.Tensor, string>([
        [ids, IDS_INPUT],
        [weights, POOL_INPUT],
      ]),
      encoder.namedParameters(),
      { compute },
    );
  } finally {
    tf.dispose([ids, weights]);
  }
  const { result, recording, recordedValue } = recorded;
  const output = required(recordedValue(result), 'exportTextTower: the recorded output').name;
  result.dispose();
  const graph = segmentRecording(fuseLayerNorms(recording).recording, [output], weightData, 'ape');
  const segment = graph.segments[0];
  if (graph.segments.length !== 1 || !segment)
    throw new Error(`exportTextTower: the text tower read values back to the host (${graph.segments.length} segments)`);
  segment.model.graph.name = `ape_text_${rows}x${length}`;
  return { model: segment.model, output, inputs: segment.inputs };
}

export interface TextExportOptions {
  /** Whether the graphs share one external weights file (Node's cache) or each hold the weights (in memory). */
  externalData: boolean;
  /** Recording mode (the default 'shapes' runs no heavy kernel). */
  compute?: 'full' | 'shapes';
  /**
   * Each weight's values by the tower's own parameter names (default: the tower's parameters, read
   * from the engine): a checkpoint's tensors read when written keep them out of memory until then.
   */
  weightData?: (name: string) => Float32Array | DeferredValues;
  /** Told each bucket's graph as it is recorded. */
  onProgress?: ExportProgress;
}

/** The whole export: every bucket's graph, one weights file. */
export function exportTextTower(
  encoder: ClipTextEncoder,
  pooling: TextPooling,
  shape: TextExportShape,
  model: { name: string; hash: string },
  options: TextExportOptions,
): TextExport {
  for (const list of [shape.batch, shape.lengths])
    if (list.length === 0 || list.some((v, i) => i > 0 && v <= list[i - 1]!))
      throw new Error(`exportTextTower: buckets must be ascending and not empty, got [${list.join(', ')}]`);
  const contextLength = encoder.config.contextLength;
  if (shape.lengths[shape.lengths.length - 1] !== contextLength)
    throw new Error(`exportTextTower: the longest bucket must be the context (${contextLength} positions)`);
  const params = encoder.namedParameters();
  const source =
    options.weightData ??
    ((name: string) => getOrThrow(params, name, 'exportTextTower: parameters').dataSync() as Float32Array);
  // Once per weight: every graph holds the same weights.
  const values = new Map<string, Float32Array | DeferredValues>();
  const weightData = (name: string): Float32Array | DeferredValues => {
    let v = values.get(name);
    if (!v) {
      v = source(name);
      values.set(name, v);
    }
    return v;
  };
  const graphs: { entry: Omit<TextGraphEntry, 'bytes'>; model: OnnxModel }[] = [];
  const total = shape.batch.length * shape.lengths.length;
  for (const batch of shape.batch) {
    for (const length of shape.lengths) {
      const g = textGraph(encoder, batch, length, weightData, options.compute);
      options.onProgress?.({ phase: 'record', done: graphs.length + 1, total, unit: 'graph' });
      const names = g.inputs.map((i) => i.name).sort();
      if (names.join() !== [IDS_INPUT, POOL_INPUT].join())
        throw new Error(`exportTextTower: the graph's inputs are [${names.join(', ')}]`);
      g.model.metadata = { model: model.name, model_hash: model.hash, rows: String(batch), length: String(length) };
      graphs.push({ entry: { batch, length, file: `text-${batch}x${length}.onnx`, output: g.output }, model: g.model });
    }
  }
  let data: TextExport['data'] = null;
  let dataEntry: TextExportManifest['data'] = null;
  if (options.externalData) {
    const { chunks, bytes } = externalizeInitializers(
      graphs.map((g) => g.model),
      TEXT_DATA_FILE,
      (t) => params.has(t.name),
    );
    const { head, tail } = chunkEdges(chunks, bytes);
    data = chunks;
    dataEntry = { file: TEXT_DATA_FILE, bytes, fingerprint: dataFingerprint(head, tail, bytes) };
  }
  const files = graphs.map((g) => encodeOnnxModel(g.model));
  const { vocabSize, embedDim } = encoder.config;
  return {
    manifest: {
      format: TEXT_MANIFEST_FORMAT,
      version: 1,
      opset: OPSET,
      model,
      shape: { batch: [...shape.batch], lengths: [...shape.lengths] },
      tower: { contextLength, vocabSize, embedDim, pooling },
      inputs: { ids: IDS_INPUT, poolWeights: POOL_INPUT },
      graphs: graphs.map((g, i) => ({ ...g.entry, bytes: files[i]!.length })),
      data: dataEntry,
    },
    files,
    data,
  };
}
