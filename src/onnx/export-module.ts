/**
 * One module's forward (a layer, a head, a tower: any function of tensors) as ONNX. The network
 * export's recorder records the call and its recording is translated as the network's is (layer
 * norms fused, cut into segments at host inputs), so the graph is the project's own code, not a
 * second definition of the module. Used to check modules on ONNX Runtime one by one.
 */
import type { tf } from '../engine/engine.js';
import { recordKernels, type RecordOptions, type Recording } from './kernel-recorder.js';
import { segmentRecording, type SegmentedGraph } from './segments.js';
import { fuseLayerNorms } from './fuse-layer-norm.js';
import { getOrThrow } from '../util/checked.js';

export interface ModuleExport<K extends string> {
  /** What the recorded TF.js call returned (the caller disposes it). */
  tfjs: Record<K, tf.Tensor>;
  /** Each output's value name in the graph. */
  outputs: Record<K, string>;
  graph: SegmentedGraph;
  recording: Recording;
}

/**
 * Records `fn` and translates the recording. `inputs` are the graph inputs (tensors made before
 * the call), `weights` the parameters (initializers under these names); tensors the code builds on
 * the host during the call become constants, the data inputs it names (padding geometry) included:
 * a module's graph serves the one call it was recorded from. Each tensor `fn` returns is a graph output.
 */
export function exportModule<K extends string>(
  fn: () => Record<K, tf.Tensor>,
  inputs: Readonly<Record<string, tf.Tensor>>,
  weights: ReadonlyMap<string, tf.Tensor>,
  options: RecordOptions = {},
): ModuleExport<K> {
  const { result, recording, recordedValue } = recordKernels(
    fn,
    new Map(Object.entries(inputs).map(([name, t]) => [t, name])),
    weights,
    options,
  );
  for (const name of recording.dataInputs) {
    const value = getOrThrow(recording.values, name, 'exportModule: recorded values');
    recording.values.set(name, { ...value, source: 'constant' });
  }
  recording.dataInputs = [];
  const outputs = {} as Record<K, string>;
  for (const [key, t] of Object.entries(result) as [K, tf.Tensor][]) {
    const value = recordedValue(t);
    if (value?.source !== 'kernel')
      throw new Error(
        `exportModule: output '${key}' is not computed by a kernel of the call (an input, a weight or a host-made tensor returned as it is)`,
      );
    outputs[key] = value.name;
  }
  const graph = segmentRecording(
    fuseLayerNorms(recording).recording,
    Object.values(outputs),
    (name) => getOrThrow(weights, name, 'exportModule: weights').dataSync() as Float32Array,
    'ape',
  );
  return { tfjs: result, outputs, graph, recording };
}
