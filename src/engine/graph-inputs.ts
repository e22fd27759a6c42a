import { tf } from './engine.js';

/**
 * Model code names two kinds of tensors it builds on the host, so that a kernel recorder
 * (src/onnx/kernel-recorder.ts) turns them into graph inputs which the exported graph's runner
 * computes with the same TypeScript:
 * - host inputs, built mid-forward from values read back (the indices of the selected proposals):
 *   the graph is cut there;
 * - data inputs, built before the tensors that use them from what the caller gave rather than from
 *   shapes (the padding geometry of the image, the padding of a sentence-count bucket): one graph
 *   then serves every value of them.
 * Without a recorder listening both are the identity.
 */
export type GraphInputKind = 'host' | 'data';

type Listener = (name: string, tensor: tf.Tensor, kind: GraphInputKind) => void;

let listener: Listener | null = null;

export function hostInput<T extends tf.Tensor>(name: string, tensor: T): T {
  listener?.(name, tensor, 'host');
  return tensor;
}

/** A float32 data input of the given shape made from `values` (see the kinds above). */
export function dataInput(name: string, values: Float32Array, shape: number[]): tf.Tensor {
  const tensor = tf.tensor(values, shape, 'float32');
  listener?.(name, tensor, 'data');
  return tensor;
}

/**
 * A keep mask (1 keeps, 0 drops) as a data input, or null when every value is 1 and no recorder
 * listens: the forward then leaves the masking out (multiplying by 1 changes nothing), while a
 * recorded graph always holds it, so that the same graph serves inputs with padding.
 */
export function keepMaskInput(name: string, values: Float32Array, shape: number[]): tf.Tensor | null {
  if (listener === null && values.every((v) => v === 1)) return null;
  return dataInput(name, values, shape);
}

/** Installs the recorder's listener (null removes it); returns the previous one. */
export function setGraphInputListener(next: Listener | null): Listener | null {
  const previous = listener;
  listener = next;
  return previous;
}

type StageListener = (stage: string) => void;

let stageListener: StageListener | null = null;

/**
 * Model code marks where a stage of the forward ends (e.g. 'backbone'): a kernel recorder notes the
 * place, and an export may cut its graph there into two segments so that each stage can be timed
 * on its own (src/onnx/segments.ts). Without a recorder listening it does nothing.
 */
export function stageEnd(stage: string): void {
  stageListener?.(stage);
}

/** Installs the recorder's stage listener (null removes it); returns the previous one. */
export function setStageEndListener(next: StageListener | null): StageListener | null {
  const previous = stageListener;
  stageListener = next;
  return previous;
}
