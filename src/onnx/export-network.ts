/**
 * Exports the network forward of an ApeNetwork as ONNX: one recorded forward at a fixed input size
 * and prompt count (image and prompt embeddings are graph inputs, weights initializers), cut into
 * segments at the host-side proposal selection. The padding geometry (the image's valid region)
 * and the sentence mask are graph inputs too (data inputs), so one export serves every aspect
 * ratio and every sentence count up to its own. The result is a manifest plus one .onnx file per
 * segment.
 */
import { tf } from '../engine/engine.js';
import { type ApeNetwork, TEXT_TOWER_PREFIX } from '../modeling/ape-network.js';
import type { ProposalSelectionConfig } from '../modeling/proposals.js';
import {
  type DataChunk,
  type DeferredValues,
  encodeOnnxModel,
  externalizeInitializers,
  initializerBytes,
} from './onnx-model.js';
import { isPlaceholder } from '../nn/module.js';
import type { ExportProgress } from './export-progress.js';
import { chunkEdges, dataFingerprint } from './external-data.js';
import { recordKernels, type RecordOptions, type Recording } from './kernel-recorder.js';
import { segmentRecording, type TensorSpec } from './segments.js';
import { fuseLayerNorms } from './fuse-layer-norm.js';
import { OPSET } from './kernel-ops.js';
import { getOrThrow, required } from '../util/checked.js';
import { GEOMETRY_INPUTS, geometryInputValues } from '../modeling/feature-geometry.js';
import { SENTENCE_KEEP_INPUT, sentenceKeepMask } from '../modeling/sentence-buckets.js';

export const MANIFEST_FILE = 'onnx-export.json';
export const MANIFEST_FORMAT = 'ape-onnx';
/** 2: the padding geometry and the sentence mask are graph inputs (1 baked one valid region in). */
export const MANIFEST_VERSION = 2;

export interface ExportShape {
  /** Square input side in pixels (a multiple of the coarsest stride). */
  size: number;
  /** Number of vocabulary prompts the graph takes, and of sentence rows (it runs any count from 1 up to them). */
  vocabulary: number;
  sentences: number;
}

/** The folder name of an export in a cache: size and prompt counts (any valid region runs on it). */
export function exportKey(shape: ExportShape): string {
  return `${shape.size}-v${shape.vocabulary}-s${shape.sentences}`;
}

export interface OnnxExportManifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  opset: number;
  model: { name: string; hash: string };
  shape: ExportShape;
  /**
   * The graph inputs: image [1, size, size, 3] 0..255, prompt embeddings [N, D], the sentence mask
   * [sentences] (SENTENCE_KEEP_INPUT; null without sentences), and the geometry inputs the graph
   * uses (GEOMETRY_INPUTS; the runner computes them with geometryInputValues and `geometry`).
   */
  inputs: {
    image: string;
    vocabulary: string | null;
    sentences: string | null;
    sentenceKeep: string | null;
    geometry: string[];
  };
  /** What geometryInputValues needs besides the shapes and the valid region. */
  geometry: { numPoints: number; embedDim: number };
  /**
   * The last decoder layer's logits [1, Q, P] (null when no prompt is scored in the graph: the
   * vocabulary is scored outside it when the export is made for 0 vocabulary prompts), boxes
   * [1, Q, 4] (cxcywh in [0, 1]), mask logits [1, Q, h, w] and hidden queries [1, Q, D].
   */
  outputs: { logits: string | null; boxes: string; masks: string; hidden: string };
  spatialShapes: [number, number][];
  maskStride: number;
  proposals: ProposalSelectionConfig;
  segments: {
    file: string;
    /** The .onnx file's size (older exports lack it), so that a truncated copy is refused before it is opened. */
    bytes?: number;
    inputs: TensorSpec[];
    outputs: TensorSpec[];
    /** Set when the segment begins at a stage's end (ExportOptions.cutAfter): no host step runs before it. */
    after?: string;
    /** The segment's external data file (its weights), with its size and fingerprint (dataFingerprint). */
    data?: { file: string; bytes: number; fingerprint: string };
  }[];
  /**
   * Host inputs between segments (before each segment after the first that has no `after`):
   * 'query_index' is the proposal selection of the reads (objectness logits, unactivated boxes).
   */
  hostSteps: { input: TensorSpec; reads: string[] }[];
}

export interface NetworkExport {
  manifest: OnnxExportManifest;
  /** The .onnx bytes of each segment, in manifest order. */
  files: Uint8Array[];
  /** Each segment's external data file as chunks (in order), or null when its weights are inside the graph. */
  data: (DataChunk[] | null)[];
}

/**
 * Segments whose weights exceed this go to an external data file: protobuf cannot hold 2 GB, and
 * below that the in-graph copy costs the writer's memory several times over.
 */
export const EXTERNAL_DATA_ABOVE = 1 << 30;

export interface ExportOptions extends RecordOptions {
  /** 'auto' (default): external data for a segment whose weights exceed EXTERNAL_DATA_ABOVE. */
  externalData?: 'auto' | 'always' | 'never';
  /**
   * Stages of the forward to end a segment after (the model marks 'backbone'): each stage then
   * runs, and is timed, on its own; the values crossing a cut pass through the runner. Default none.
   */
  cutAfter?: readonly string[];
  /**
   * Each weight's values (default: the network's parameter, read from the engine): a checkpoint
   * file's tensor read when the export is encoded or written (checkpoint-weights.ts) keeps them
   * out of memory until then, and lets the recording run on weights of the right shapes only.
   */
  weightData?: (name: string) => Float32Array | DeferredValues;
  /** Told the modules the recording reaches. */
  onProgress?: ExportProgress;
}

/**
 * The parameters a recording of `network`'s forward sees: not the text tower's (the graph takes
 * prompt vectors; in a network made from its detector alone they are placeholders), nor any other
 * placeholder (parts not made have no shape to record).
 */
export function recordedParameters(network: ApeNetwork): Map<string, tf.Variable> {
  return new Map(
    [...network.namedParameters()].filter(([name, v]) => !isPlaceholder(v) && !name.startsWith(TEXT_TOWER_PREFIX)),
  );
}

/** One recorded forward of the network, with the names of its last layer's outputs. */
export interface NetworkRecording {
  recording: Recording;
  outputs: OnnxExportManifest['outputs'];
  spatialShapes: [number, number][];
}

/** Encoder tokens (all levels) at a square input of `size`. */
function encoderTokens(network: ApeNetwork, size: number): number {
  return network.levelStrides.reduce((a, s) => a + Math.ceil(size / s) ** 2, 0);
}

const defaultChunkRows = (network: ApeNetwork, size: number): number =>
  encoderTokens(network, size) > 1 << 15 ? 1 << 14 : Infinity;

/**
 * Records one forward of `network` (inference settings: last layer, its masks, no chunking) on a
 * random image and random prompt embeddings of the given shape (`seed` picks them), the image
 * filling `valid` of the input (default all of it) and the last `paddedSentences` sentences padding.
 */
export function recordNetwork(
  network: ApeNetwork,
  shape: ExportShape,
  seed = 1,
  options: RecordOptions & { valid?: [number, number]; paddedSentences?: number } = {},
): NetworkRecording {
  const { size, vocabulary, sentences } = shape;
  if (!Number.isInteger(size) || size <= 0)
    throw new Error(`exportNetwork: size must be a positive integer, got ${size}`);
  const valid = options.valid ?? [size, size];
  const dim = network.config.text.encoder.embedDim;
  const image = tf.randomUniform([1, size, size, 3], 0, 255, 'float32', seed) as tf.Tensor4D;
  const vocab = vocabulary > 0 ? (tf.randomNormal([vocabulary, dim], 0, 1, 'float32', seed + 1) as tf.Tensor2D) : null;
  const sent = sentences > 0 ? (tf.randomNormal([sentences, dim], 0, 1, 'float32', seed + 2) as tf.Tensor2D) : null;
  // Without prompts the forward still needs one name, which it neither encodes nor scores.
  const vocabTexts = Array.from({ length: Math.max(vocabulary, sentences > 0 ? 0 : 1) }, (_, i) => `vocabulary ${i}`);
  const sentenceTexts = Array.from({ length: sentences }, (_, i) => `sentence ${i}`);
  const inputs = new Map<tf.Tensor, string>([[image, 'image']]);
  if (vocab) inputs.set(vocab, 'vocabulary');
  if (sent) inputs.set(sent, 'sentences');

  // The prompt embeddings come from the graph inputs instead of the text tower (an own property
  // shadows the method for this one forward).
  const own = network as unknown as { encodePrompts?: (texts: readonly string[]) => tf.Tensor2D };
  own.encodePrompts = (texts) =>
    tf.clone(
      texts[0] === vocabTexts[0]
        ? required(vocab, 'exportNetwork: the vocabulary input')
        : required(sent, 'exportNetwork: the sentences input'),
    );
  let recorded: ReturnType<typeof recordKernels<ReturnType<typeof network.forward>>>;
  try {
    recorded = recordKernels(
      () =>
        network.forward(
          { images: image, sizes: [valid] },
          { vocabulary: vocabTexts, sentences: sentenceTexts, paddedSentences: options.paddedSentences ?? 0 },
          {
            layers: 'last',
            masks: 'last',
            chunkRows: options.chunkRows ?? defaultChunkRows(network, size),
            vocabularyLogits: vocabulary > 0,
            hidden: true,
          },
        ),
      inputs,
      recordedParameters(network),
      options,
    );
  } finally {
    delete own.encodePrompts;
    tf.dispose([image, ...(vocab ? [vocab] : []), ...(sent ? [sent] : [])]);
  }
  const { result, recording, recordedValue } = recorded;
  const last = result.layers[result.layers.length - 1]!;
  const name = (t: tf.Tensor): string =>
    required(recordedValue(t), `exportNetwork: the recorded value of an output (tensor ${t.id})`).name;
  const outputs = {
    logits: vocabulary + sentences > 0 ? name(last.logits) : null,
    boxes: name(last.boxes),
    masks: name(required(last.masks, 'the recorded mask logits')),
    hidden: name(required(last.hidden, 'the recorded hidden queries')),
  };
  const spatialShapes = result.spatialShapes.map(([h, w]) => [h, w] as [number, number]);
  result.dispose();
  return { recording, outputs, spatialShapes };
}

/**
 * The data inputs a runner computes must be what the forward made: each recorded one is checked
 * against geometryInputValues (the whole input valid, as recorded) or the sentence mask (no
 * padding), value for value.
 */
function checkDataInputs(
  recording: Recording,
  network: ApeNetwork,
  shape: ExportShape,
  spatialShapes: [number, number][],
): OnnxExportManifest['geometry'] {
  const settings = {
    numPoints: network.config.transformer.numPoints,
    embedDim: network.config.transformer.embedDim,
  };
  const { size, sentences } = shape;
  const geometry = geometryInputValues(spatialShapes, [[size, size]], [size, size], settings);
  for (const name of recording.dataInputs) {
    const recorded = getOrThrow(recording.values, name, 'exportNetwork: recorded values');
    const expected =
      name === SENTENCE_KEEP_INPUT
        ? { values: sentenceKeepMask(sentences, sentences), shape: [sentences] }
        : geometry[name];
    if (!expected) throw new Error(`exportNetwork: the forward made a data input '${name}' that no runner computes`);
    const data = required(recorded.data, `exportNetwork: the values of data input '${name}'`);
    const same =
      tf.util.arraysEqual(recorded.shape, expected.shape) &&
      data.length === expected.values.length &&
      data.every((v, i) => Object.is(v, expected.values[i]));
    if (!same)
      throw new Error(
        `exportNetwork: data input '${name}' is not what the runner would compute for it (geometry code out of step)`,
      );
  }
  return settings;
}

/**
 * Records the network (recordNetwork; by default without running its heavy kernels, which the
 * graph does not need) and translates the recording. The padding geometry and the sentence mask
 * are graph inputs: an export serves every valid region and every sentence count up to its own.
 */
export function exportNetwork(
  network: ApeNetwork,
  shape: ExportShape,
  modelHash: string,
  options: ExportOptions = {},
): NetworkExport {
  const { size, vocabulary, sentences } = shape;
  const { onProgress } = options;
  const { recording, outputs, spatialShapes } = recordNetwork(network, shape, 1, {
    compute: 'shapes',
    ...options,
    ...(onProgress ? { onModule: (done, total) => onProgress({ phase: 'record', done, total, unit: 'module' }) } : {}),
  });
  const geometrySettings = checkDataInputs(recording, network, shape, spatialShapes);
  const params = network.namedParameters();
  const graph = segmentRecording(
    fuseLayerNorms(recording).recording,
    [outputs.logits, outputs.boxes, outputs.masks, outputs.hidden].filter((o): o is string => o !== null),
    options.weightData ?? ((name) => getOrThrow(params, name, 'exportNetwork: parameters').dataSync() as Float32Array),
    'ape',
    options.cutAfter,
  );
  for (const step of graph.hostSteps) {
    if (step.input.name !== 'query_index' || step.reads.length !== 2)
      throw new Error(`exportNetwork: unexpected host step '${step.input.name}' reading ${step.reads.length} values`);
  }
  const used = new Set(graph.segments.flatMap((s) => s.inputs.map((i) => i.name)));
  const geometryNames: string[] = Object.values(GEOMETRY_INPUTS);
  const manifest: OnnxExportManifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    opset: OPSET,
    model: { name: network.config.name, hash: modelHash },
    shape: { size, vocabulary, sentences },
    inputs: {
      image: 'image',
      vocabulary: vocabulary > 0 ? 'vocabulary' : null,
      sentences: sentences > 0 ? 'sentences' : null,
      sentenceKeep: used.has(SENTENCE_KEEP_INPUT) ? SENTENCE_KEEP_INPUT : null,
      geometry: geometryNames.filter((n) => used.has(n)),
    },
    geometry: geometrySettings,
    outputs,
    spatialShapes,
    maskStride: network.maskStride,
    proposals: { ...network.config.transformer.proposals },
    segments: graph.segments.map((s, i) => ({
      file: `segment-${i}.onnx`,
      inputs: s.inputs,
      outputs: s.outputs,
      ...(s.after ? { after: s.after } : {}),
    })),
    hostSteps: graph.hostSteps,
  };
  const data = graph.segments.map((s, i) => {
    const segment = manifest.segments[i]!;
    const external = options.externalData ?? 'auto';
    if (external === 'never' || (external === 'auto' && initializerBytes(s.model) <= EXTERNAL_DATA_ABOVE)) return null;
    const file = `${segment.file}.data`;
    const { chunks, bytes } = externalizeInitializers(s.model, file);
    const { head, tail } = chunkEdges(chunks, bytes);
    segment.data = { file, bytes, fingerprint: dataFingerprint(head, tail, bytes) };
    return chunks;
  });
  for (const s of graph.segments)
    s.model.metadata = { model: network.config.name, model_hash: modelHash, size: String(size) };
  const files = graph.segments.map((s) => encodeOnnxModel(s.model));
  for (const [i, f] of files.entries()) manifest.segments[i]!.bytes = f.length;
  return { manifest, files, data };
}

/** The bytes an export writes (graphs and external data). */
export function exportBytes(exported: NetworkExport): number {
  return (
    exported.files.reduce((a, f) => a + f.length, 0) +
    exported.manifest.segments.reduce((a, s) => a + (s.data?.bytes ?? 0), 0)
  );
}
