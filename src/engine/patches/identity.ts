/**
 * Identity, and Cast to the tensor's own dtype, for wasm: the output shares the input's data
 * (one more reference), as on the cpu backend. The stock kernels copy. That matters in training:
 * tfjs-core clones every tensor an op saves for its gradient (an Identity), and the gradient of
 * such a clone, like that of every Mul, casts float32 to float32 again, so a training step of the
 * tiny preset made ~1,300 full copies. TF.js never writes into a tensor's data after its kernel
 * returns (variables get new data on assign), so sharing is safe.
 *
 * Cast to bool is x != 0 here; the stock kernel stored the number truncated into a byte, so -2.2
 * became 254 and 0.5 became 0 (false).
 */
import type { tf } from '../tf.js';
import {
  asWasm,
  f32View,
  i32View,
  offsetOf,
  patchWasmKernel,
  type KernelArgs,
  type KernelImpl,
} from './wasm-internals.js';

function share(args: KernelArgs): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  asWasm(args.backend).incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

export function identityWasm(stock: KernelImpl | null): KernelImpl {
  return (args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (x.dtype === 'string') {
      if (!stock) throw new Error('Identity (wasm patch): no stock kernel for string tensors');
      return stock(args);
    }
    return share(args);
  };
}

function castToBool(args: KernelArgs): tf.TensorInfo {
  const backend = asWasm(args.backend);
  const { x } = args.inputs as { x: tf.TensorInfo };
  const out = backend.makeOutput([...x.shape], 'bool');
  const src = x.dtype === 'float32' ? f32View(backend, x) : i32View(backend, x);
  const size = src.length;
  const dst = new Uint8Array(backend.wasm.HEAPU8.buffer, offsetOf(backend, out), size);
  for (let i = 0; i < size; i++) dst[i] = src[i] !== 0 ? 1 : 0;
  return out;
}

export function castWasm(stock: KernelImpl | null): KernelImpl {
  return (args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { dtype } = args.attrs as unknown as tf.CastAttrs;
    if (dtype === x.dtype && dtype !== 'string') return share(args);
    if (dtype === 'bool' && (x.dtype === 'float32' || x.dtype === 'int32')) return castToBool(args);
    if (!stock) throw new Error('Cast (wasm patch): no stock kernel to fall back to');
    return stock(args);
  };
}

export function patchIdentity(): void {
  patchWasmKernel('Identity', identityWasm);
  patchWasmKernel('Cast', castWasm);
}
