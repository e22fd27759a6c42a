import { tf } from './tf.js';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { installWasmPatches } from './patches/index.js';
import { installCpuPatches } from './patches/cpu.js';
import { registerCoreGradientFixes } from './core-gradient-fixes.js';
import { defineGradientTensorMethods } from './tensor-methods.js';

export { tf };

export type BackendName = 'wasm' | 'cpu';

export interface EngineOptions {
  /** 'wasm' for real work; 'cpu' only as a correctness reference in tests. */
  backend?: BackendName;
  /** Browser only: the URL folder that serves the tfjs-backend-wasm .wasm files. */
  wasmPaths?: string;
}

/**
 * Selects the TF.js backend and installs the project's kernel patches for it (see docs/engine.md)
 * plus the fixes to tfjs-core gradients. Idempotent: kernels are patched once per process, and
 * switching backends is cheap.
 */
export async function initEngine(options: EngineOptions = {}): Promise<typeof tf> {
  const backend = options.backend ?? 'wasm';
  if (options.wasmPaths !== undefined) setWasmPaths(options.wasmPaths);
  if (backend === 'wasm') installWasmPatches();
  else installCpuPatches();
  // Applied on every call: loading tfjs-core's gradient set (training) after it would undo it.
  registerCoreGradientFixes();
  defineGradientTensorMethods();
  if (tf.getBackend() !== backend) {
    const ok = await tf.setBackend(backend);
    if (!ok) throw new Error(`engine: could not initialise the TF.js '${backend}' backend`);
  }
  await tf.ready();
  // The cpu backend greets its first tensor in Node with advice to install tfjs-node, which this
  // project does not use (wasm is the engine); the greeting is all that `firstUse` switches.
  if (backend === 'cpu') (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  return tf;
}
