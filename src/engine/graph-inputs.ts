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
