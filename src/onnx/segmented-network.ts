/**
 * Runs an exported network on an ONNX Runtime: the segments in order, with the proposal selection
 * between them done by the project's own TypeScript (selectQueries), as in the TF.js forward.
 * Platform-neutral: the sessions and tensors come from onnxruntime-node (ort-network.ts) or
 * onnxruntime-web (the page), which share this API shape.
 */
import { geometryInputValues, levelGeometry, proposalAnchors, type HostArray } from '../modeling/feature-geometry.js';
import { selectQueries } from '../modeling/proposals.js';
import { padSentenceRows, sentenceKeepMask } from '../modeling/sentence-buckets.js';
import { MANIFEST_FORMAT, MANIFEST_VERSION, type OnnxExportManifest } from './export-network.js';
import type { TensorSpec } from './segments.js';
import { getOrThrow, required } from '../util/checked.js';

/** The part of an ONNX Runtime tensor this runner reads. */
export interface OrtTensorLike {
  readonly data: unknown;
  readonly dims: readonly number[];
}

/** The part of an ONNX Runtime inference session this runner uses (both runtimes' InferenceSession fit). */
export interface OrtSessionLike {
  run(feeds: Record<string, OrtTensorLike>): Promise<Record<string, OrtTensorLike>>;
  release(): Promise<void>;
  endProfiling(): void;
}

/** Makes a tensor of the runtime the sessions belong to (each runtime accepts only its own). */
export type OrtTensorFactory = (
  type: 'float32' | 'int32',
  data: Float32Array | Int32Array,
  dims: readonly number[],
) => OrtTensorLike;

export interface OrtNetworkInputs {
  /** [1, size, size, 3] RGB 0..255, the image at the top-left, zeros after it. */
  image: Float32Array;
  /** The image's [height, width] inside the input (the rest is padding); default the whole input. */
  valid?: [number, number];
  /** [vocabulary, D] prompt embeddings (as many as the export was made for). */
  vocabulary?: Float32Array;
  /** [n, D] sentence embeddings, n from 1 to the export's sentence rows (the rest is padded and masked). */
  sentences?: Float32Array;
}

export interface OrtNetworkOutputs {
  /**
   * [1, Q, vocabulary + n]: the vocabulary's and the given sentences' columns (those of padded
   * rows left out); null when the export scores no prompt (see OnnxExportManifest.outputs).
   */
  logits: { data: Float32Array; dims: number[] } | null;
  hidden: { data: Float32Array; dims: number[] };
  boxes: { data: Float32Array; dims: number[] };
  masks: { data: Float32Array; dims: number[] };
  /** Token indices picked as decoder queries. */
  selected: Int32Array;
  /**
   * Milliseconds in each segment (without cuts, 0: backbone and encoder with proposals, 1: decoder
   * and heads; an export cut after the backbone has backbone, encoder, decoder) and in the host
   * selection.
   */
  timings: { segments: number[]; host: number };
}

export function checkManifest(value: unknown, source: string): OnnxExportManifest {
  const m = value as Partial<OnnxExportManifest> | null;
  if (!m || typeof m !== 'object' || m.format !== MANIFEST_FORMAT)
    throw new Error(`${source}: not an APE ONNX export (format must be '${MANIFEST_FORMAT}')`);
  if ((m.version as number) === 1)
    throw new Error(`${source}: made by an older exporter (one export per valid region); export it again`);
  if (m.version !== MANIFEST_VERSION) throw new Error(`${source}: unsupported export version ${String(m.version)}`);
  if (
    !Array.isArray(m.segments) ||
    m.segments.length === 0 ||
    !Array.isArray(m.hostSteps) ||
    m.hostSteps.length !== m.segments.filter((s, i) => i > 0 && !s?.after).length
  ) {
    throw new Error(`${source}: segments and host steps do not fit together`);
  }
  if (
    !m.shape ||
    !m.outputs ||
    !m.inputs ||
    !Array.isArray(m.inputs.geometry) ||
    !m.geometry ||
    !Array.isArray(m.spatialShapes) ||
    !m.proposals
  )
    throw new Error(`${source}: missing shape, inputs, geometry, outputs, spatialShapes or proposals`);
  if (typeof m.outputs.hidden !== 'string')
    throw new Error(`${source}: no hidden-query output (made by an older exporter); export it again`);
  return m as OnnxExportManifest;
}

/**
 * Creates one session per segment of `manifest` (`create(i)` makes segment i's); when one fails,
 * those made so far are released before the error goes on.
 */
export async function createSegmentSessions<S extends OrtSessionLike>(
  manifest: OnnxExportManifest,
  create: (index: number) => Promise<S>,
): Promise<S[]> {
  const sessions: S[] = [];
  try {
    for (let i = 0; i < manifest.segments.length; i++) sessions.push(await create(i));
  } catch (e) {
    await Promise.all(sessions.map((s) => s.release()));
    throw e;
  }
  return sessions;
}

/**
 * Runs segments in order on their sessions: each takes its inputs from `known` (the caller's
 * feeds, earlier segments' outputs, host inputs) and adds its outputs there; before each segment
 * i > 0 that is not a cut after a stage (`after`), `hostStep(k)` adds the k-th host step's input. Returns the milliseconds of each segment and of
 * the host steps together.
 */
export async function runSegments(
  segments: readonly { inputs: readonly TensorSpec[]; outputs: readonly TensorSpec[]; after?: string }[],
  sessions: readonly OrtSessionLike[],
  known: Map<string, OrtTensorLike>,
  where: string,
  hostStep: (index: number) => void,
): Promise<{ segments: number[]; host: number }> {
  if (sessions.length !== segments.length)
    throw new Error(`${where}: ${sessions.length} sessions for ${segments.length} segments`);
  const timings = { segments: [] as number[], host: 0 };
  let steps = 0;
  for (let i = 0; i < sessions.length; i++) {
    const segment = segments[i]!;
    // A segment that begins at a stage's end (a cut) has no host step before it.
    if (i > 0 && !segment.after) {
      const t0 = performance.now();
      hostStep(steps++);
      timings.host += performance.now() - t0;
    }
    const feeds: Record<string, OrtTensorLike> = {};
    for (const input of segment.inputs) {
      const t = known.get(input.name);
      if (!t) throw new Error(`${where}: segment ${i} needs '${input.name}', which nothing produced`);
      feeds[input.name] = t;
    }
    const t0 = performance.now();
    const out = await sessions[i]!.run(feeds);
    timings.segments.push(performance.now() - t0);
    for (const o of segment.outputs) known.set(o.name, out[o.name]!);
  }
  return timings;
}

export class SegmentedNetwork {
  private readonly levelIds: Int32Array;
  /**
   * The last valid region's geometry inputs: images of one aspect ratio in a row skip computing
   * them (~5 ms for the tiny model at 256, ~0.3 s and 120 MB for ape-ti at 1024).
   */
  private lastGeometry: { key: string; values: Record<string, HostArray> } | null = null;

  constructor(
    readonly manifest: OnnxExportManifest,
    private readonly sessions: readonly OrtSessionLike[],
    private readonly tensor: OrtTensorFactory,
  ) {
    if (sessions.length !== manifest.segments.length)
      throw new Error(`SegmentedNetwork: ${sessions.length} sessions for ${manifest.segments.length} segments`);
    const size = manifest.shape.size;
    const anchors = proposalAnchors(levelGeometry(manifest.spatialShapes, [[size, size]], [size, size]));
    this.levelIds = Int32Array.from(anchors.levelIds);
  }

  /** The geometry inputs of an image filling `valid` of the input (geometryInputValues, the forward's own code). */
  private geometryInputs(valid: [number, number]): Record<string, HostArray> {
    const size = this.manifest.shape.size;
    const [h, w] = valid;
    if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0 && h <= size && w <= size))
      throw new Error(`OrtNetwork: valid region ${h}x${w} does not fit the ${size}x${size} input`);
    const key = `${h}x${w}`;
    if (this.lastGeometry?.key !== key) {
      this.lastGeometry = {
        key,
        values: geometryInputValues(this.manifest.spatialShapes, [valid], [size, size], this.manifest.geometry),
      };
    }
    return this.lastGeometry.values;
  }

  /**
   * One forward. `queryIndex` replaces the host selection with given picks (flat token indices, as
   * TF.js's encoder.selected): a parity check can then compare the decoder on the same queries.
   */
  async run(inputs: OrtNetworkInputs, queryIndex?: Int32Array): Promise<OrtNetworkOutputs> {
    const m = this.manifest;
    const known = new Map<string, OrtTensorLike>();
    const feed = (name: string | null, data: Float32Array | undefined, what: string): void => {
      if (name === null) {
        if (data && data.length > 0) throw new Error(`OrtNetwork: this export takes no ${what}`);
        return;
      }
      const spec = this.inputSpec(name);
      if (!spec) return; // The graph does not use it.
      const expected = spec.shape.reduce((a, b) => a * b, 1);
      if (!data || data.length !== expected) {
        throw new Error(
          `OrtNetwork: ${what} must have ${expected} values (shape [${spec.shape.join(', ')}]), got ${data?.length ?? 0}`,
        );
      }
      known.set(name, this.tensor('float32', data, spec.shape));
    };
    const geometry = this.geometryInputs(inputs.valid ?? [m.shape.size, m.shape.size]);
    feed(m.inputs.image, inputs.image, 'image');
    feed(m.inputs.vocabulary, inputs.vocabulary, 'vocabulary embeddings');
    for (const name of m.inputs.geometry) {
      const g = required(geometry[name], `OrtNetwork: the geometry input '${name}'`);
      feed(name, g.values, `geometry input '${name}'`);
    }
    const rows = m.shape.sentences;
    let given = 0;
    if (m.inputs.sentences !== null && inputs.sentences) {
      const dim = required(this.inputSpec(m.inputs.sentences), 'OrtNetwork: the sentence input').shape[1]!;
      given = inputs.sentences.length / dim;
      if (!(Number.isInteger(given) && given >= 1 && given <= rows))
        throw new Error(
          `OrtNetwork: this export takes 1 to ${rows} sentence embeddings of ${dim} values, got ${inputs.sentences.length} values`,
        );
      feed(m.inputs.sentences, padSentenceRows(inputs.sentences, dim, rows), 'sentence embeddings');
      if (m.inputs.sentenceKeep !== null) feed(m.inputs.sentenceKeep, sentenceKeepMask(given, rows), 'sentence mask');
    } else {
      feed(m.inputs.sentences, inputs.sentences, 'sentence embeddings');
    }

    let selected: Int32Array = new Int32Array(0);
    const timings = await runSegments(m.segments, this.sessions, known, 'OrtNetwork', (i) => {
      selected = this.hostStep(m.hostSteps[i]!, known, queryIndex);
    });
    const read = (name: string) => {
      const t = getOrThrow(known, name, 'OrtNetwork: outputs');
      return { data: t.data as Float32Array, dims: [...t.dims] };
    };
    return {
      logits: m.outputs.logits === null ? null : withoutPaddedColumns(read(m.outputs.logits), rows - given),
      hidden: read(m.outputs.hidden),
      boxes: read(m.outputs.boxes),
      masks: read(m.outputs.masks),
      selected,
      timings,
    };
  }

  /** The spec of a graph input, if a segment takes it. */
  private inputSpec(name: string): TensorSpec | undefined {
    return this.manifest.segments.flatMap((s) => s.inputs).find((s) => s.name === name);
  }

  /** The proposal selection: objectness logits and unactivated boxes -> rows of the picked tokens. */
  private hostStep(
    step: { input: TensorSpec; reads: string[] },
    known: Map<string, OrtTensorLike>,
    given?: Int32Array,
  ): Int32Array {
    const [logits, boxes] = step.reads.map(
      (r) => getOrThrow(known, r, 'OrtNetwork: host step inputs').data as Float32Array,
    ) as [Float32Array, Float32Array];
    const expected = step.input.shape.reduce((a, b) => a * b, 1);
    if (given && given.length !== expected)
      throw new Error(`OrtNetwork: queryIndex must have ${expected} picks, got ${given.length}`);
    const flatIndex =
      given ??
      selectQueries(logits, boxes, this.levelIds, 1, this.manifest.spatialShapes.length, this.manifest.proposals)
        .flatIndex;
    known.set(step.input.name, this.tensor('int32', flatIndex, step.input.shape));
    return flatIndex;
  }

  /** Ends profiling (sessions made with profiling on): ONNX Runtime writes each session's profile file. */
  endProfiling(): void {
    for (const s of this.sessions) s.endProfiling();
  }

  async release(): Promise<void> {
    await Promise.all(this.sessions.map((s) => s.release()));
  }
}

/** [1, Q, P] logits without their last `padded` columns (those of padded sentence rows). */
function withoutPaddedColumns(
  logits: { data: Float32Array; dims: number[] },
  padded: number,
): { data: Float32Array; dims: number[] } {
  if (padded === 0) return logits;
  const [b, q, p] = logits.dims as [number, number, number];
  const kept = p - padded;
  const data = new Float32Array(b * q * kept);
  for (let r = 0; r < b * q; r++) data.set(logits.data.subarray(r * p, r * p + kept), r * kept);
  return { data, dims: [b, q, kept] };
}
