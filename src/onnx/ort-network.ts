/**
 * Runs an exported network on ONNX Runtime (Node): the segments in order, with the proposal
 * selection between them done by the project's own TypeScript (selectQueries), as in the TF.js
 * forward.
 */
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { levelGeometry, proposalAnchors } from '../modeling/feature-geometry.js';
import { selectQueries } from '../modeling/proposals.js';
import { MANIFEST_FILE, MANIFEST_FORMAT, type OnnxExportManifest } from './export-network.js';
import type { TensorSpec } from './segments.js';
import { checkExternalData } from './export-files.js';

export interface OrtNetworkInputs {
  /** [1, size, size, 3] RGB 0..255. */
  image: Float32Array;
  /** [vocabulary, D] and [sentences, D] prompt embeddings (as many as the export was made for). */
  vocabulary?: Float32Array;
  sentences?: Float32Array;
}

export interface OrtNetworkOutputs {
  logits: { data: Float32Array; dims: number[] };
  boxes: { data: Float32Array; dims: number[] };
  masks: { data: Float32Array; dims: number[] };
  /** Token indices picked as decoder queries. */
  selected: Int32Array;
  /** Milliseconds in each segment (0: backbone and encoder with proposals; 1: decoder and heads) and in the host selection between them. */
  timings: { segments: number[]; host: number };
}

export interface OrtNetworkOptions {
  /** Threads of each ONNX Runtime session (default: ONNX Runtime's choice, all cores). */
  threads?: number;
  /** Write ONNX Runtime's per-op profile (JSON) with this file prefix; endProfiling ends it. */
  profile?: string;
}

export function checkManifest(value: unknown, source: string): OnnxExportManifest {
  const m = value as Partial<OnnxExportManifest> | null;
  if (!m || typeof m !== 'object' || m.format !== MANIFEST_FORMAT)
    throw new Error(`${source}: not an APE ONNX export (format must be '${MANIFEST_FORMAT}')`);
  if (m.version !== 1) throw new Error(`${source}: unsupported export version ${String(m.version)}`);
  if (
    !Array.isArray(m.segments) ||
    m.segments.length === 0 ||
    !Array.isArray(m.hostSteps) ||
    m.hostSteps.length !== m.segments.length - 1
  ) {
    throw new Error(`${source}: segments and host steps do not fit together`);
  }
  if (!m.shape || !m.outputs || !m.inputs || !Array.isArray(m.spatialShapes) || !m.proposals)
    throw new Error(`${source}: missing shape, inputs, outputs, spatialShapes or proposals`);
  return m as OnnxExportManifest;
}

export class OrtNetwork {
  private constructor(
    readonly manifest: OnnxExportManifest,
    private readonly sessions: ort.InferenceSession[],
    private readonly levelIds: Int32Array,
  ) {}

  static async load(dir: string, options: OrtNetworkOptions = {}): Promise<OrtNetwork> {
    const path = join(dir, MANIFEST_FILE);
    const text = await readFile(path, 'utf8').catch((e: Error) => {
      throw new Error(`OrtNetwork: cannot read ${path}: ${e.message}`);
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new Error(`${path}: ${(e as Error).message}`);
    }
    const manifest = checkManifest(parsed, path);
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      // Idle intra-op threads sleep instead of spinning: on a 2-core machine the spinning threads
      // otherwise take the core that the host selection and post-processing (JS) run on.
      extra: { session: { intra_op: { allow_spinning: '0' } } },
      ...(options.threads ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
      ...(options.profile ? { enableProfiling: true, profileFilePrefix: options.profile } : {}),
    };
    const sessions: ort.InferenceSession[] = [];
    try {
      for (const s of manifest.segments) {
        const file = join(dir, s.file);
        await access(file).catch((e: Error) => {
          throw new Error(`OrtNetwork: cannot read ${file}: ${e.message}`);
        });
        if (s.data)
          await checkExternalData(dir, s.data).catch((e: Error) => {
            throw new Error(`OrtNetwork: ${e.message}`);
          });
        // From the path, so that ONNX Runtime finds (and maps) the external data next to it.
        sessions.push(
          await ort.InferenceSession.create(file, sessionOptions).catch((e: Error) => {
            throw new Error(`OrtNetwork: ONNX Runtime refused ${file}: ${e.message}`);
          }),
        );
      }
    } catch (e) {
      await Promise.all(sessions.map((s) => s.release()));
      throw e;
    }
    const size = manifest.shape.size;
    const anchors = proposalAnchors(
      levelGeometry(manifest.spatialShapes, [manifest.shape.valid ?? [size, size]], [size, size]),
    );
    return new OrtNetwork(manifest, sessions, Int32Array.from(anchors.levelIds));
  }

  /**
   * One forward. `queryIndex` replaces the host selection with given picks (flat token indices, as
   * TF.js's encoder.selected): a parity check can then compare the decoder on the same queries.
   */
  async run(inputs: OrtNetworkInputs, queryIndex?: Int32Array): Promise<OrtNetworkOutputs> {
    const m = this.manifest;
    const known = new Map<string, ort.Tensor>();
    const feed = (name: string | null, data: Float32Array | undefined, what: string): void => {
      if (name === null) {
        if (data && data.length > 0) throw new Error(`OrtNetwork: this export takes no ${what}`);
        return;
      }
      const spec = m.segments.flatMap((s) => s.inputs).find((s) => s.name === name);
      if (!spec) return; // The graph does not use it.
      const expected = spec.shape.reduce((a, b) => a * b, 1);
      if (!data || data.length !== expected) {
        throw new Error(
          `OrtNetwork: ${what} must have ${expected} values (shape [${spec.shape.join(', ')}]), got ${data?.length ?? 0}`,
        );
      }
      known.set(name, new ort.Tensor('float32', data, spec.shape));
    };
    feed(m.inputs.image, inputs.image, 'image');
    feed(m.inputs.vocabulary, inputs.vocabulary, 'vocabulary embeddings');
    feed(m.inputs.sentences, inputs.sentences, 'sentence embeddings');

    let selected: Int32Array = new Int32Array(0);
    const timings = { segments: [] as number[], host: 0 };
    for (let i = 0; i < this.sessions.length; i++) {
      if (i > 0) {
        const t0 = performance.now();
        selected = this.hostStep(m.hostSteps[i - 1]!, known, queryIndex);
        timings.host += performance.now() - t0;
      }
      const segment = m.segments[i]!;
      const feeds: Record<string, ort.Tensor> = {};
      for (const input of segment.inputs) {
        const t = known.get(input.name);
        if (!t) throw new Error(`OrtNetwork: segment ${i} needs '${input.name}', which nothing produced`);
        feeds[input.name] = t;
      }
      const t0 = performance.now();
      const out = await this.sessions[i]!.run(feeds);
      timings.segments.push(performance.now() - t0);
      for (const o of segment.outputs) known.set(o.name, out[o.name]!);
    }
    const read = (name: string) => {
      const t = known.get(name)!;
      return { data: t.data as Float32Array, dims: [...t.dims] };
    };
    return {
      logits: read(m.outputs.logits),
      boxes: read(m.outputs.boxes),
      masks: read(m.outputs.masks),
      selected,
      timings,
    };
  }

  /** The proposal selection: objectness logits and unactivated boxes -> rows of the picked tokens. */
  private hostStep(
    step: { input: TensorSpec; reads: string[] },
    known: Map<string, ort.Tensor>,
    given?: Int32Array,
  ): Int32Array {
    const [logits, boxes] = step.reads.map((r) => known.get(r)!.data as Float32Array) as [Float32Array, Float32Array];
    const expected = step.input.shape.reduce((a, b) => a * b, 1);
    if (given && given.length !== expected)
      throw new Error(`OrtNetwork: queryIndex must have ${expected} picks, got ${given.length}`);
    const flatIndex =
      given ??
      selectQueries(logits, boxes, this.levelIds, 1, this.manifest.spatialShapes.length, this.manifest.proposals)
        .flatIndex;
    known.set(step.input.name, new ort.Tensor('int32', flatIndex, step.input.shape));
    return flatIndex;
  }

  /** Ends profiling (OrtNetworkOptions.profile): ONNX Runtime writes each session's profile file. */
  endProfiling(): void {
    for (const s of this.sessions) s.endProfiling();
  }

  async release(): Promise<void> {
    await Promise.all(this.sessions.map((s) => s.release()));
  }
}
