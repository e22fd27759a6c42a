/**
 * A recording -> ONNX graphs. The forward reads some values back to the host and makes host
 * inputs from them (the proposal selection): the graph is cut there into segments, each an ONNX
 * model; a segment's inputs are the caller's inputs, the host inputs, and values of earlier
 * segments. Only kernels that the requested outputs need are kept.
 */
import type { Recording, RecordedValue } from './kernel-recorder.js';
import { GraphBuilder } from './graph-builder.js';
import { mapKernel, onnxType, OPSET } from './kernel-ops.js';
import type { DeferredValues, OnnxModel, OnnxTensor, OnnxValueInfo } from './onnx-model.js';
import { getOrThrow } from '../util/checked.js';

export interface TensorSpec {
  name: string;
  dtype: 'float32' | 'int32' | 'bool';
  shape: number[];
}

export interface SegmentPlan {
  /** Values fed to the segment (caller inputs, host inputs, earlier segments' outputs). */
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  model: OnnxModel;
  /** A segment that begins at a stage's end (a cut, no host step before it): that stage. */
  after?: string;
}

/** A host input and the values (outputs of earlier segments) the host read before making it, in read order. */
export interface HostStep {
  input: TensorSpec;
  reads: string[];
}

export interface SegmentedGraph {
  segments: SegmentPlan[];
  hostSteps: HostStep[];
}

function spec(v: RecordedValue): TensorSpec {
  if (v.dtype !== 'float32' && v.dtype !== 'int32' && v.dtype !== 'bool')
    throw new Error(`ONNX export: value ${v.name} has dtype ${v.dtype}`);
  return { name: v.name, dtype: v.dtype, shape: v.shape };
}

function valueInfo(s: TensorSpec): OnnxValueInfo {
  return { name: s.name, type: onnxType(s.dtype, s.name), dims: s.shape };
}

function initializer(v: RecordedValue, data: OnnxTensor['data']): OnnxTensor {
  return { name: v.name, type: onnxType(v.dtype, v.name), dims: v.shape, data };
}

/**
 * Cuts the recording at its host inputs, and at the ends of the stages named in `cutAfter`
 * (stageEnd; such a segment has no host step before it). `outputs` are the values the caller
 * wants from the last segment (or any segment); `weightData` gives each weight's values (or
 * where they are read when the segment is written).
 */
export function segmentRecording(
  recording: Recording,
  outputs: string[],
  weightData: (name: string) => Float32Array | DeferredValues,
  producer: string,
  cutAfter: readonly string[] = [],
): SegmentedGraph {
  const { kernels, values } = recording;
  const cuts = cutAfter.map((stage) => {
    const end = recording.stageEnds.find((e) => e.stage === stage);
    if (!end)
      throw new Error(
        `ONNX export: no stage '${stage}' to cut after (the forward marked: ${recording.stageEnds.map((e) => e.stage).join(', ') || 'none'})`,
      );
    return end;
  });
  // Segment boundaries in forward order: host inputs and cuts. A value made after a cut belongs to
  // a segment at or after it; after a host input, only values that depend on it move on.
  const boundaries = [
    ...recording.hostInputs.map((h) => ({ kernelCount: h.kernelCount, host: h.value as string | null, stage: '' })),
    ...cuts.map((c) => ({ kernelCount: c.kernelCount, host: null, stage: c.stage })),
  ].sort((a, b) => a.kernelCount - b.kernelCount);
  const producerOf = new Map<string, number>();
  kernels.forEach((k, i) => k.outputs.forEach((o) => producerOf.set(o, i)));
  const value = (name: string): RecordedValue => {
    const v = values.get(name);
    if (!v) throw new Error(`ONNX export: unknown value '${name}'`);
    return v;
  };

  // Static values (weights, constants, and what is computed from them alone) belong to no
  // segment: each segment that needs one recomputes it (ONNX Runtime folds them at load).
  // Other values: the latest segment among their inputs' (a host input starts its boundary's
  // segment), and no earlier than the segment of the last cut made before them.
  const hostIndex = new Map(boundaries.flatMap((b, i) => (b.host === null ? [] : [[b.host, i + 1] as const])));
  const segmentOf = new Map<string, number | null>();
  for (const v of values.values()) {
    if (v.source === 'weight' || v.source === 'constant') segmentOf.set(v.name, null);
    else if (v.source !== 'kernel') segmentOf.set(v.name, hostIndex.get(v.name) ?? 0);
  }
  // The segment that the last cut at or before kernel k starts.
  const cutFloor = (k: number) =>
    boundaries.reduce((floor, b, i) => (b.host === null && b.kernelCount <= k ? i + 1 : floor), 0);
  for (const [index, k] of kernels.entries()) {
    const from = k.inputs
      .map((i) => getOrThrow(segmentOf, i.value, 'segments of values'))
      .filter((x): x is number => x !== null);
    for (const o of k.outputs) segmentOf.set(o, from.length === 0 ? null : Math.max(cutFloor(index), ...from));
  }
  const stepReads: string[][] = recording.hostInputs.map((h, i) => {
    const previous = i === 0 ? -1 : recording.hostInputs[i - 1]!.kernelCount;
    return [
      ...new Set(
        recording.reads
          .filter((r) => !r.copied && r.kernelCount > previous && r.kernelCount <= h.kernelCount)
          .map((r) => r.value),
      ),
    ];
  });
  const count = boundaries.length + 1;

  // Per segment: the kernels it runs and the values it must output (requested outputs, host
  // reads, values that later segments use).
  const members: Set<number>[] = Array.from({ length: count }, () => new Set());
  const wanted: Set<string>[] = Array.from({ length: count }, () => new Set());
  const require = (name: string, s: number): void => {
    const from = segmentOf.get(name) ?? s;
    if (from < s) {
      if (value(name).source === 'kernel') wanted[from]!.add(name);
      require(name, from);
      return;
    }
    const k = producerOf.get(name);
    if (k === undefined || members[s]!.has(k)) return;
    members[s]!.add(k);
    for (const i of kernels[k]!.inputs) require(i.value, s);
  };
  const roots = [...outputs, ...stepReads.flat()];
  for (const name of roots) {
    const s = segmentOf.get(name) ?? 0;
    wanted[s]!.add(name);
    require(name, s);
  }
  const segments = Array.from({ length: count }, (_, s): SegmentPlan => {
    const b = new GraphBuilder(`s${s}_`);
    const inputs = new Map<string, TensorSpec>();
    const initializers = new Map<string, OnnxTensor>();
    for (const [index, k] of kernels.entries()) {
      if (!members[s]!.has(index)) continue;
      for (const i of k.inputs) {
        const v = value(i.value);
        if (v.source === 'weight') {
          if (!initializers.has(v.name)) initializers.set(v.name, initializer(v, weightData(v.name)));
        } else if (v.source === 'constant') {
          if (!initializers.has(v.name))
            initializers.set(v.name, initializer(v, v.data as Float32Array | Int32Array | Uint8Array));
        } else if (
          v.source !== 'kernel' ||
          !members[s]!.has(getOrThrow(producerOf, v.name, 'producers of kernel values'))
        ) {
          inputs.set(v.name, spec(v));
        }
      }
      mapKernel({ b, kernel: k, inputs: k.inputs.map((i) => i.value), outputs: k.outputs, value });
    }
    const outs = [...wanted[s]!].map((name) => spec(value(name)));
    // A requested value that is itself an input of this segment passes through.
    for (const o of outs)
      if (inputs.has(o.name)) throw new Error(`ONNX export: output '${o.name}' is an input of segment ${s}`);
    const inputList = [...inputs.values()];
    const model: OnnxModel = {
      producer,
      opset: OPSET,
      graph: {
        name: `ape_segment_${s}`,
        nodes: b.nodes,
        initializers: [...initializers.values(), ...b.constants],
        inputs: inputList.map(valueInfo),
        outputs: outs.map(valueInfo),
      },
    };
    const stage = s > 0 ? boundaries[s - 1]!.stage : '';
    return { inputs: inputList, outputs: outs, model, ...(stage ? { after: stage } : {}) };
  });
  const hostSteps = recording.hostInputs.map((h, i) => ({ input: spec(value(h.value)), reads: stepReads[i]! }));
  return { segments, hostSteps };
}
