/**
 * Exports the network forward of an ApeNetwork as ONNX: one recorded forward at a fixed input size
 * and prompt count (image and prompt embeddings are graph inputs, weights initializers), cut into
 * segments at the host-side proposal selection. The result is a manifest plus one .onnx file per
 * segment.
 */
import { tf } from '../engine/engine.js';
import type { ApeNetwork } from '../modeling/ape-network.js';
import type { ProposalSelectionConfig } from '../modeling/proposals.js';
import { encodeOnnxModel, externalizeInitializers, initializerBytes } from './onnx-model.js';
import { chunkEdges, dataFingerprint } from './external-data.js';
import { recordKernels, type RecordOptions, type Recording } from './kernel-recorder.js';
import { segmentRecording, type TensorSpec } from './segments.js';
import { fuseLayerNorms } from './fuse-layer-norm.js';
import { OPSET } from './kernel-ops.js';
import { getOrThrow, required } from '../util/checked.js';

export const MANIFEST_FILE = 'onnx-export.json';
export const MANIFEST_FORMAT = 'ape-onnx';

export interface ExportShape {
  /** Square input side in pixels (a multiple of the coarsest stride). */
  size: number;
  /** Number of vocabulary prompts and of sentence prompts the graph takes. */
  vocabulary: number;
  sentences: number;
  /** The image's [height, width] inside the input (the rest is padding); default the whole input. */
  valid?: [number, number];
}

/** The folder name of an export in a cache: size, valid region and prompt counts. */
export function exportKey(shape: ExportShape): string {
  const [h, w] = shape.valid ?? [shape.size, shape.size];
  return `${shape.size}-${h}x${w}-v${shape.vocabulary}-s${shape.sentences}`;
}

export interface OnnxExportManifest {
  format: typeof MANIFEST_FORMAT;
  version: 1;
  opset: number;
  model: { name: string; hash: string };
  shape: ExportShape;
  /** The graph inputs: image [1, size, size, 3] 0..255, prompt embeddings [N, D]. */
  inputs: { image: string; vocabulary: string | null; sentences: string | null };
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
    /** The segment's external data file (its weights), with its size and fingerprint (dataFingerprint). */
    data?: { file: string; bytes: number; fingerprint: string };
  }[];
  /** Host inputs between segments: 'query_index' is the proposal selection of the reads (objectness logits, unactivated boxes). */
  hostSteps: { input: TensorSpec; reads: string[] }[];
}

export interface NetworkExport {
  manifest: OnnxExportManifest;
  /** The .onnx bytes of each segment, in manifest order. */
  files: Uint8Array[];
  /** Each segment's external data file as chunks (in order), or null when its weights are inside the graph. */
  data: (Uint8Array[] | null)[];
}

/**
 * Segments whose weights exceed this go to an external data file: protobuf cannot hold 2 GB, and
 * below that the in-graph copy costs the writer's memory several times over.
 */
export const EXTERNAL_DATA_ABOVE = 1 << 30;

export interface ExportOptions extends RecordOptions {
  /** 'auto' (default): external data for a segment whose weights exceed EXTERNAL_DATA_ABOVE. */
  externalData?: 'auto' | 'always' | 'never';
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
 * random image and random prompt embeddings of the given shape (`seed` picks them).
 */
export function recordNetwork(
  network: ApeNetwork,
  shape: ExportShape,
  seed = 1,
  options: RecordOptions = {},
): NetworkRecording {
  const { size, vocabulary, sentences } = shape;
  if (!Number.isInteger(size) || size <= 0)
    throw new Error(`exportNetwork: size must be a positive integer, got ${size}`);
  const valid = shape.valid ?? [size, size];
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
          { vocabulary: vocabTexts, sentences: sentenceTexts },
          {
            layers: 'last',
            masks: 'last',
            chunkRows: options.chunkRows ?? defaultChunkRows(network, size),
            vocabularyLogits: vocabulary > 0,
            hidden: true,
          },
        ),
      inputs,
      network.namedParameters(),
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
 * Records the network (recordNetwork; by default without running its heavy kernels, which the
 * graph does not need) and translates the recording. The padding geometry (the valid region) is
 * baked in as constants: an export serves one valid size.
 */
export function exportNetwork(
  network: ApeNetwork,
  shape: ExportShape,
  modelHash: string,
  options: ExportOptions = {},
): NetworkExport {
  const { size, vocabulary, sentences } = shape;
  const valid = shape.valid ?? [size, size];
  const { recording, outputs, spatialShapes } = recordNetwork(network, shape, 1, { compute: 'shapes', ...options });
  const params = network.namedParameters();
  const graph = segmentRecording(
    fuseLayerNorms(recording).recording,
    [outputs.logits, outputs.boxes, outputs.masks, outputs.hidden].filter((o): o is string => o !== null),
    (name) => getOrThrow(params, name, 'exportNetwork: parameters').dataSync() as Float32Array,
    'ape',
  );
  for (const step of graph.hostSteps) {
    if (step.input.name !== 'query_index' || step.reads.length !== 2)
      throw new Error(`exportNetwork: unexpected host step '${step.input.name}' reading ${step.reads.length} values`);
  }
  const manifest: OnnxExportManifest = {
    format: MANIFEST_FORMAT,
    version: 1,
    opset: OPSET,
    model: { name: network.config.name, hash: modelHash },
    shape: { size, vocabulary, sentences, valid },
    inputs: {
      image: 'image',
      vocabulary: vocabulary > 0 ? 'vocabulary' : null,
      sentences: sentences > 0 ? 'sentences' : null,
    },
    outputs,
    spatialShapes,
    maskStride: network.maskStride,
    proposals: { ...network.config.transformer.proposals },
    segments: graph.segments.map((s, i) => ({ file: `segment-${i}.onnx`, inputs: s.inputs, outputs: s.outputs })),
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
