/**
 * A recording -> ONNX graphs. The forward reads some values back to the host and makes host
 * inputs from them (the proposal selection): the graph is cut there into segments, each an ONNX
 * model; a segment's inputs are the caller's inputs, the host inputs, and values of earlier
 * segments. Only kernels that the requested outputs need are kept.
 */
import type { Recording, RecordedValue } from './kernel-recorder.js';
import { GraphBuilder } from './graph-builder.js';
import { mapKernel, onnxType, OPSET } from './kernel-ops.js';
import type { OnnxModel, OnnxTensor, OnnxValueInfo } from './onnx-model.js';

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
  if (v.dtype !== 'float32' && v.dtype !== 'int32' && v.dtype !== 'bool') throw new Error(`ONNX export: value ${v.name} has dtype ${v.dtype}`);
  return { name: v.name, dtype: v.dtype, shape: v.shape };
}

function valueInfo(s: TensorSpec): OnnxValueInfo {
  return { name: s.name, type: onnxType(s.dtype, s.name), dims: s.shape };
}

function initializer(v: RecordedValue, data: Float32Array | Int32Array | Uint8Array): OnnxTensor {
  return { name: v.name, type: onnxType(v.dtype, v.name), dims: v.shape, data };
}

/**
 * Cuts the recording at its host inputs. `outputs` are the values the caller wants from the last
 * segment (or any segment); `weightData` gives each weight's values.
 */
export function segmentRecording(recording: Recording, outputs: string[], weightData: (name: string) => Float32Array, producer: string): SegmentedGraph {
  const { kernels, values } = recording;
  const producerOf = new Map<string, number>();
  kernels.forEach((k, i) => k.outputs.forEach((o) => producerOf.set(o, i)));
  const value = (name: string): RecordedValue => {
    const v = values.get(name);
    if (!v) throw new Error(`ONNX export: unknown value '${name}'`);
    return v;
  };

  // Segment of every value: 0 before any host input, else 1 + the latest host input it depends on.
  const hostIndex = new Map(recording.hostInputs.map((h, i) => [h.value, i + 1]));
  const segmentOf = new Map<string, number>();
  for (const v of values.values()) if (v.source !== 'kernel') segmentOf.set(v.name, hostIndex.get(v.name) ?? 0);
  for (const k of kernels) {
    const s = Math.max(0, ...k.inputs.map((i) => segmentOf.get(i.value) ?? 0));
    for (const o of k.outputs) segmentOf.set(o, s);
  }
  const stepReads: string[][] = recording.hostInputs.map((h, i) => {
    const previous = i === 0 ? -1 : recording.hostInputs[i - 1]!.kernelCount;
    return [...new Set(recording.reads.filter((r) => r.kernelCount > previous && r.kernelCount <= h.kernelCount).map((r) => r.value))];
  });
  const count = recording.hostInputs.length + 1;

  // Per segment, the values it must output: requested outputs, values later segments use, host reads.
  const wanted: Set<string>[] = Array.from({ length: count }, () => new Set());
  const needed = new Set<string>();
  const stack = [...outputs, ...stepReads.flat()];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (needed.has(name)) continue;
    needed.add(name);
    const k = producerOf.get(name);
    if (k !== undefined) for (const i of kernels[k]!.inputs) stack.push(i.value);
  }
  for (const o of outputs) wanted[segmentOf.get(o)!]!.add(o);
  stepReads.forEach((reads) => reads.forEach((r) => wanted[segmentOf.get(r)!]!.add(r)));
  for (const k of kernels) {
    if (!k.outputs.some((o) => needed.has(o))) continue;
    const s = segmentOf.get(k.outputs[0]!)!;
    for (const i of k.inputs) {
      const from = segmentOf.get(i.value)!;
      if (from < s && value(i.value).source === 'kernel') wanted[from]!.add(i.value);
    }
  }

  const segments = Array.from({ length: count }, (_, s): SegmentPlan => {
    const b = new GraphBuilder(`s${s}_`);
    const inputs = new Map<string, TensorSpec>();
    const initializers = new Map<string, OnnxTensor>();
    for (const k of kernels) {
      if (segmentOf.get(k.outputs[0]!) !== s || !k.outputs.some((o) => needed.has(o))) continue;
      for (const i of k.inputs) {
        const v = value(i.value);
        const from = segmentOf.get(v.name)!;
        if (v.source === 'weight') {
          if (!initializers.has(v.name)) initializers.set(v.name, initializer(v, weightData(v.name)));
        } else if (v.source === 'constant') {
          if (!initializers.has(v.name)) initializers.set(v.name, initializer(v, v.data as Float32Array | Int32Array | Uint8Array));
        } else if (v.source === 'input' || v.source === 'host-input' || from < s) {
          inputs.set(v.name, spec(v));
        }
      }
      mapKernel({ b, kernel: k, inputs: k.inputs.map((i) => i.value), outputs: k.outputs, value });
    }
    const outs = [...wanted[s]!].map((name) => spec(value(name)));
    // A requested value that is itself an input of this segment passes through.
    for (const o of outs) if (inputs.has(o.name)) throw new Error(`ONNX export: output '${o.name}' is an input of segment ${s}`);
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
    return { inputs: inputList, outputs: outs, model };
  });
  const hostSteps = recording.hostInputs.map((h, i) => ({ input: spec(value(h.value)), reads: stepReads[i]! }));
  return { segments, hostSteps };
}
