/**
 * Differentiable multi-scale deformable attention core (APE's `multi_scale_deformable_attn_pytorch`)
 * as one TF.js kernel with its own gradient kernel, for the wasm and cpu backends. Built from
 * gathers it would be several rank-5+ ops per level and 3-10x slower; here the sampling reads the
 * tensors' memory directly (the wasm heap, or the cpu backend's arrays).
 */
import { tf } from './tf.js';
import { msdaBackward, msdaForward, type MsdaDims } from './ms-deform-attn-math.js';
import { asWasm, f32View } from './patches/wasm-internals.js';

export const MS_DEFORM_ATTN = 'ApeMsDeformAttn';
export const MS_DEFORM_ATTN_GRAD = 'ApeMsDeformAttnGrad';

interface MsdaAttrs {
  /** Flat (H_0, W_0, H_1, W_1, ...). */
  spatialShapes: number[];
}

/** Reads inputs and allocates outputs on one backend. */
interface Memory {
  read(t: tf.TensorInfo): Float32Array;
  /** Allocates all outputs first, then returns their writable arrays and infos. */
  alloc(shapes: number[][]): { infos: tf.TensorInfo[]; arrays: Float32Array[] };
}

function wasmMemory(backendObj: object): Memory {
  const backend = asWasm(backendObj);
  return {
    read: (t) => f32View(backend, t),
    alloc: (shapes) => {
      // Every allocation may grow (and so detach) the heap: take the views after all of them.
      const infos = shapes.map((s) => backend.makeOutput(s, 'float32'));
      return { infos, arrays: infos.map((i) => f32View(backend, i)) };
    },
  };
}

interface CpuBackend {
  data: { get(dataId: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

function cpuMemory(backendObj: object): Memory {
  const backend = backendObj as CpuBackend;
  return {
    read: (t) => {
      const values = backend.data.get(t.dataId).values;
      if (!(values instanceof Float32Array)) throw new Error('msDeformAttn: cpu tensor data is not a Float32Array');
      return values;
    },
    alloc: (shapes) => {
      const arrays = shapes.map((s) => new Float32Array(tf.util.sizeFromShape(s)));
      return { infos: shapes.map((s, i) => backend.makeTensorInfo(s, 'float32', arrays[i]!)), arrays };
    },
  };
}

/** Checks shapes and returns the kernel dims; bad input gets an error naming the argument. */
function dimsOf(value: tf.TensorInfo, loc: tf.TensorInfo, weights: tf.TensorInfo, shapes: readonly number[]): MsdaDims {
  const fail = (msg: string): never => {
    throw new Error(`msDeformAttn: ${msg}`);
  };
  for (const [name, t] of [
    ['value', value],
    ['samplingLocations', loc],
    ['attentionWeights', weights],
  ] as const) {
    if (t.dtype !== 'float32') fail(`${name} must be float32, got ${t.dtype}`);
  }
  if (value.shape.length !== 4) fail(`value must be [bs, S, heads, dHead], got shape ${JSON.stringify(value.shape)}`);
  const [batch, numValue, heads, dHead] = value.shape as [number, number, number, number];
  if (shapes.length === 0 || shapes.length % 2 !== 0 || shapes.some((v) => !Number.isInteger(v) || v <= 0)) {
    fail(`spatialShapes must be a non-empty list of positive integer (H, W) pairs, got ${JSON.stringify(shapes)}`);
  }
  const levels = shapes.length / 2;
  let total = 0;
  for (let l = 0; l < levels; l++) total += shapes[2 * l]! * shapes[2 * l + 1]!;
  if (total !== numValue)
    fail(`value has S=${numValue} rows but spatialShapes ${JSON.stringify(shapes)} cover ${total}`);
  if (weights.shape.length < 2 || weights.shape[0] !== batch) {
    fail(`attentionWeights must be [bs=${batch}, Lq, heads, levels, points], got ${JSON.stringify(weights.shape)}`);
  }
  const numQuery = weights.shape[1]!;
  const perQuery = heads * levels;
  const wSize = tf.util.sizeFromShape(weights.shape);
  const points = wSize / (batch * numQuery * perQuery);
  if (!Number.isInteger(points) || points <= 0) {
    fail(
      `attentionWeights shape ${JSON.stringify(weights.shape)} is not [bs, Lq, heads=${heads}, levels=${levels}, points]`,
    );
  }
  if (weights.shape.length === 5 && (weights.shape[2] !== heads || weights.shape[3] !== levels)) {
    fail(`attentionWeights shape ${JSON.stringify(weights.shape)} does not match heads=${heads}, levels=${levels}`);
  }
  if (loc.shape[0] !== batch || loc.shape[1] !== numQuery || tf.util.sizeFromShape(loc.shape) !== 2 * wSize) {
    fail(
      `samplingLocations must be [bs=${batch}, Lq=${numQuery}, heads=${heads}, levels=${levels}, points=${points}, 2], got ${JSON.stringify(loc.shape)}`,
    );
  }
  if (loc.shape.length === 6 && loc.shape[5] !== 2)
    fail(`samplingLocations must end in 2 (x, y), got ${JSON.stringify(loc.shape)}`);
  return { batch, numValue, heads, dHead, numQuery, levels, points, shapes };
}

/** The kernel's inputs by name, as msDeformAttn (and, with dy, its gradient) passes them. */
type MsdaInputs = Record<'value' | 'samplingLocations' | 'attentionWeights', tf.TensorInfo>;

function forwardKernel(memory: (backend: object) => Memory): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { value, samplingLocations: loc, attentionWeights: weights } = inputs as unknown as MsdaInputs;
    const d = dimsOf(value, loc, weights, (attrs as unknown as MsdaAttrs).spatialShapes);
    const mem = memory(backend);
    const { infos, arrays } = mem.alloc([[d.batch, d.numQuery, d.heads * d.dHead]]);
    msdaForward(d, mem.read(value), mem.read(loc), mem.read(weights), arrays[0]!);
    return infos[0]!;
  };
}

function gradKernel(memory: (backend: object) => Memory): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const {
      dy,
      value,
      samplingLocations: loc,
      attentionWeights: weights,
    } = inputs as unknown as MsdaInputs & { dy: tf.TensorInfo };
    const d = dimsOf(value, loc, weights, (attrs as unknown as MsdaAttrs).spatialShapes);
    const mem = memory(backend);
    const { infos, arrays } = mem.alloc([value.shape, loc.shape, weights.shape]);
    msdaBackward(
      d,
      mem.read(value),
      mem.read(loc),
      mem.read(weights),
      mem.read(dy),
      arrays[0]!,
      arrays[1]!,
      arrays[2]!,
    );
    return infos;
  };
}

let registered = false;

function ensureRegistered(): void {
  if (registered) return;
  registered = true;
  for (const [backendName, memory] of [
    ['wasm', wasmMemory],
    ['cpu', cpuMemory],
  ] as const) {
    tf.registerKernel({ kernelName: MS_DEFORM_ATTN, backendName, kernelFunc: forwardKernel(memory) });
    tf.registerKernel({ kernelName: MS_DEFORM_ATTN_GRAD, backendName, kernelFunc: gradKernel(memory) });
  }
  tf.registerGradient({
    kernelName: MS_DEFORM_ATTN,
    inputsToSave: ['value', 'samplingLocations', 'attentionWeights'],
    gradFunc: (dy, saved, attrs) => {
      const [value, samplingLocations, attentionWeights] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      // One pass gives all three gradients; the thunks hand them out (unused ones are freed when
      // the backward pass's scope ends).
      const [dValue, dLoc, dWeights] = tf
        .engine()
        .runKernel<tf.Tensor[]>(
          MS_DEFORM_ATTN_GRAD,
          { dy: dy as tf.Tensor, value, samplingLocations, attentionWeights },
          attrs,
        ) as [tf.Tensor, tf.Tensor, tf.Tensor];
      return { value: () => dValue, samplingLocations: () => dLoc, attentionWeights: () => dWeights };
    },
  });
}

/**
 * Multi-scale deformable attention core, differentiable in value, sampling locations and
 * attention weights.
 * @param value [bs, S, heads, dHead] with S = sum of H_l * W_l, levels stacked in order
 * @param spatialShapes (H_l, W_l) per level (constants)
 * @param samplingLocations [bs, Lq, heads, levels, points, 2], (x, y) normalised to [0, 1]
 *   (any shape [bs, Lq, ...] of that size, e.g. rank 4, is accepted)
 * @param attentionWeights [bs, Lq, heads, levels, points] (or [bs, Lq, ...] of that size)
 * @returns [bs, Lq, heads * dHead]
 */
export function msDeformAttn(
  value: tf.Tensor4D,
  spatialShapes: readonly (readonly [number, number])[],
  samplingLocations: tf.Tensor,
  attentionWeights: tf.Tensor,
): tf.Tensor3D {
  ensureRegistered();
  const backend = tf.getBackend();
  if (backend !== 'wasm' && backend !== 'cpu')
    throw new Error(`msDeformAttn: backend '${backend}' is not supported (wasm or cpu)`);
  const attrs: MsdaAttrs = { spatialShapes: spatialShapes.flat() };
  return tf
    .engine()
    .runKernel<tf.Tensor3D>(
      MS_DEFORM_ATTN,
      { value, samplingLocations, attentionWeights },
      attrs as unknown as tf.NamedAttrMap,
    );
}
