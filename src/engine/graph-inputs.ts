import type { tf } from './engine.js';

/**
 * Model code names the tensors it builds on the host from values it read back mid-forward (e.g.
 * the indices of the selected proposals): a kernel recorder (src/onnx/kernel-recorder.ts) turns
 * them into named graph inputs, which the exported graph's runner computes with the same
 * TypeScript. Without a recorder listening this is the identity.
 */
type Listener = (name: string, tensor: tf.Tensor) => void;

let listener: Listener | null = null;

export function hostInput<T extends tf.Tensor>(name: string, tensor: T): T {
  listener?.(name, tensor);
  return tensor;
}

/** Installs the recorder's listener (null removes it); returns the previous one. */
export function setHostInputListener(next: Listener | null): Listener | null {
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
