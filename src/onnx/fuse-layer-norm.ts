/**
 * Finds the kernels of the project's layerNorm (src/nn/layer-norm.ts: mean, subtract, square,
 * mean, add eps, rsqrt, multiply, scale, shift over the last axis) in a recording and replaces
 * each chain by one 'ApeLayerNorm' kernel, which becomes ONNX LayerNormalization (opset 17): one
 * pass over the tensor instead of nine. Only chains whose intermediate values nothing else uses
 * are fused; the chain's other kernels stay in the recording, unused (segments drop them).
 */
import type { RecordedKernel, Recording } from './kernel-recorder.js';
import { getOrThrow } from '../util/checked.js';

export const LAYER_NORM_KERNEL = 'ApeLayerNorm';

/** The recording with its layer norms fused (a new kernel list; values are shared), and how many. */
export function fuseLayerNorms(recording: Recording): { recording: Recording; fused: number } {
  const { kernels, values } = recording;
  const consumers = new Map<string, number[]>();
  kernels.forEach((k, i) => {
    for (const input of k.inputs) {
      const list = consumers.get(input.value);
      if (list) list.push(i);
      else consumers.set(input.value, [i]);
    }
  });
  // Values the host reads must stay computed as they are.
  const read = new Set(recording.reads.map((r) => r.value));
  const only = (value: string, kernel: string): RecordedKernel | null => {
    const list = consumers.get(value) ?? [];
    if (list.length !== 1 || read.has(value)) return null;
    const k = kernels[list[0]!]!;
    return k.kernel === kernel ? k : null;
  };
  const recorded = (name: string) => getOrThrow(values, name, 'fuseLayerNorms: recorded values');
  const lastAxis = (k: RecordedKernel): boolean => {
    const rank = recorded(k.inputs[0]!.value).shape.length;
    const axis = k.attrs.axis as number | number[];
    const a = Array.isArray(axis) ? (axis.length === 1 ? axis[0]! : Number.NaN) : axis;
    return k.attrs.keepDims === true && (a === -1 || a === rank - 1);
  };
  const inputsAre = (k: RecordedKernel, a: string, b: string) => k.inputs[0]?.value === a && k.inputs[1]?.value === b;

  const out = [...kernels];
  let fused = 0;
  for (const mean of kernels) {
    if (mean.kernel !== 'Mean' || !lastAxis(mean)) continue;
    const x = mean.inputs[0]!.value;
    const sub = only(mean.outputs[0]!, 'Sub');
    if (!sub || !inputsAre(sub, x, mean.outputs[0]!)) continue;
    const centered = sub.outputs[0]!;
    const uses = (consumers.get(centered) ?? []).map((n) => kernels[n]!);
    if (read.has(centered) || uses.length !== 2) continue;
    const square = uses.find((k) => k.kernel === 'Square');
    if (!square) continue;
    const variance = only(square.outputs[0]!, 'Mean');
    if (!variance || !lastAxis(variance)) continue;
    const addEps = only(variance.outputs[0]!, 'Add');
    if (!addEps || addEps.inputs[0]!.value !== variance.outputs[0]) continue;
    const eps = values.get(addEps.inputs[1]!.value);
    const epsilon = eps?.source === 'constant' && eps.data?.length === 1 ? eps.data[0] : undefined;
    if (epsilon === undefined) continue;
    const rsqrt = only(addEps.outputs[0]!, 'Rsqrt');
    if (!rsqrt) continue;
    const normed = only(rsqrt.outputs[0]!, 'Multiply');
    if (!normed || !inputsAre(normed, centered, rsqrt.outputs[0]!) || !uses.includes(normed)) continue;
    const scaled = only(normed.outputs[0]!, 'Multiply');
    const shifted = scaled && only(scaled.outputs[0]!, 'Add');
    if (
      !scaled ||
      !shifted ||
      scaled.inputs[0]!.value !== normed.outputs[0] ||
      shifted.inputs[0]!.value !== scaled.outputs[0]
    )
      continue;
    const dim = recorded(x).shape.at(-1);
    const gamma = scaled.inputs[1]!.value;
    const beta = shifted.inputs[1]!.value;
    // LayerNormalization takes a per-channel scale and shift only.
    const perChannel = (p: string) => {
      const shape = recorded(p).shape;
      return shape.length === 1 && shape[0] === dim;
    };
    if (!perChannel(gamma) || !perChannel(beta)) continue;
    const at = kernels.indexOf(shifted);
    out[at] = {
      kernel: LAYER_NORM_KERNEL,
      inputs: [
        { key: 'x', value: x },
        { key: 'gamma', value: gamma },
        { key: 'beta', value: beta },
      ],
      outputs: shifted.outputs,
      attrs: { epsilon: Number(epsilon) },
    };
    fused++;
  }
  return { recording: { ...recording, kernels: out }, fused };
}
