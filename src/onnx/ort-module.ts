/**
 * A module export (exportModule) on onnxruntime-node: one session per segment, run in order
 * (runSegments, as the network runs) with the caller's host steps between them.
 */
import * as ort from 'onnxruntime-node';
import { encodeOnnxModel } from './onnx-model.js';
import type { ModuleExport } from './export-module.js';
import type { TensorSpec } from './segments.js';
import { ortSessionOptions, type OrtNetworkOptions } from './ort-network.js';
import { runSegments, type OrtTensorLike } from './segmented-network.js';
import { getOrThrow } from '../util/checked.js';

export type OrtModuleData = Float32Array | Int32Array | Uint8Array;

/** A host step: the values it read (in read order) -> the values of its host input. */
export type OrtModuleHostStep = (reads: OrtModuleData[]) => OrtModuleData;

export interface OrtModuleOutput {
  data: OrtModuleData;
  dims: number[];
}

const ARRAY_OF = { float32: Float32Array, int32: Int32Array, bool: Uint8Array } as const;

function tensorOf(spec: TensorSpec, data: OrtModuleData): ort.Tensor {
  const size = spec.shape.reduce((a, b) => a * b, 1);
  if (!(data instanceof ARRAY_OF[spec.dtype]) || data.length !== size)
    throw new Error(
      `OrtModule: '${spec.name}' must be a ${ARRAY_OF[spec.dtype].name} of ${size} values (${spec.dtype} [${spec.shape.join(', ')}]), got a ${data.constructor.name} of ${data.length}`,
    );
  return new ort.Tensor(spec.dtype, data, spec.shape);
}

export class OrtModule<K extends string> {
  private constructor(
    private readonly exported: Pick<ModuleExport<K>, 'graph' | 'outputs'>,
    private readonly sessions: ort.InferenceSession[],
  ) {}

  static async create<K extends string>(
    exported: Pick<ModuleExport<K>, 'graph' | 'outputs'>,
    options: OrtNetworkOptions = {},
  ): Promise<OrtModule<K>> {
    const sessions: ort.InferenceSession[] = [];
    try {
      for (const [i, s] of exported.graph.segments.entries()) {
        const session = await ort.InferenceSession.create(encodeOnnxModel(s.model), ortSessionOptions(options)).catch(
          (e: Error) => {
            throw new Error(`OrtModule: ONNX Runtime refused segment ${i}: ${e.message}`);
          },
        );
        sessions.push(session);
      }
    } catch (e) {
      await Promise.all(sessions.map((s) => s.release()));
      throw e;
    }
    return new OrtModule(exported, sessions);
  }

  /**
   * One run. `feeds`: each graph input's values (row-major, in the recorded shape; inputs the graph
   * does not use are ignored); `hostSteps`: the function of each host input the graph is cut at.
   */
  async run(
    feeds: Readonly<Record<string, OrtModuleData>>,
    hostSteps: Readonly<Record<string, OrtModuleHostStep>> = {},
  ): Promise<Record<K, OrtModuleOutput>> {
    const { graph, outputs } = this.exported;
    const specs = new Map(graph.segments.flatMap((s) => s.inputs).map((s) => [s.name, s]));
    const known = new Map<string, OrtTensorLike>();
    for (const [name, data] of Object.entries(feeds)) {
      const spec = specs.get(name);
      if (spec) known.set(name, tensorOf(spec, data));
    }
    await runSegments(graph.segments, this.sessions, known, 'OrtModule', (i) => {
      const step = graph.hostSteps[i]!;
      const fn = hostSteps[step.input.name];
      if (!fn) throw new Error(`OrtModule: the graph is cut at the host input '${step.input.name}', which has no step`);
      const reads = step.reads.map((r) => getOrThrow(known, r, 'OrtModule: values').data as OrtModuleData);
      known.set(step.input.name, tensorOf(step.input, fn(reads)));
    });
    const result = {} as Record<K, OrtModuleOutput>;
    for (const [key, name] of Object.entries(outputs) as [K, string][]) {
      const t = getOrThrow(known, name, 'OrtModule: values');
      result[key] = { data: t.data as OrtModuleData, dims: [...t.dims] };
    }
    return result;
  }

  async release(): Promise<void> {
    await Promise.all(this.sessions.map((s) => s.release()));
  }
}
