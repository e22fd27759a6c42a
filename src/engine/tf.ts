/**
 * The TF.js namespace with both backends registered, and nothing else: the leaf that the kernel
 * patches and gradient fixes import, so that engine.ts (which installs them) is not imported back.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

export { tf };
