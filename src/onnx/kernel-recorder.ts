/**
 * Records the TF.js engine's kernel calls while a function runs (one forward of the network): the
 * kernels with their attributes, and where each of their inputs came from (a kernel output, a
 * weight, a caller's input, a constant the code built on the host, a host input the model named
 * with hostInput, or a data input it named with dataInput, recorded as a caller's input). The
 * recording is what the ONNX exporter translates; the code that runs is the same code that trains.
 */
import { tf } from '../engine/engine.js';
import { setGraphInputListener, setStageEndListener } from '../engine/graph-inputs.js';
import { getOrThrow, required } from '../util/checked.js';
import { MS_DEFORM_ATTN } from '../engine/ms-deform-attn.js';

export type ValueSource = 'input' | 'weight' | 'constant' | 'kernel' | 'host-input';

export interface RecordedValue {
  name: string;
  shape: number[];
  dtype: tf.DataType;
  source: ValueSource;
  /** Constants and data inputs: their values (a data input's in the recorded forward). */
  data?: tf.TypedArray;
  /** Constants: made after the code had read a kernel output back to the host. */
  afterRead?: boolean;
}

export interface RecordedKernel {
  kernel: string;
  /** Input names in the order the kernel received them, with the kernel's own keys. */
  inputs: { key: string; value: string }[];
  outputs: string[];
  attrs: Record<string, unknown>;
}

/** A kernel output the code read back to the host, after `kernelCount` kernels had run. */
export interface HostRead {
  value: string;
  kernelCount: number;
  /** The read only made a copy of the value (a detach), which the recording keeps as the value. */
  copied: boolean;
}

/** A host input the model named (hostInput), made after `kernelCount` kernels had run. */
export interface HostInputEvent {
  value: string;
  kernelCount: number;
}

/** The end of a stage the model marked (stageEnd), after `kernelCount` kernels had run. */
export interface StageEndEvent {
  stage: string;
  kernelCount: number;
}

export interface Recording {
  kernels: RecordedKernel[];
  values: Map<string, RecordedValue>;
  reads: HostRead[];
  hostInputs: HostInputEvent[];
  /** The data inputs the model named (dataInput), in the order it made them; their values have source 'input'. */
  dataInputs: string[];
  stageEnds: StageEndEvent[];
}

interface EngineInternals {
  runKernel(name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>): tf.Tensor | tf.Tensor[];
  readSync(dataId: object): tf.TypedArray;
  makeTensor(values: unknown, shape: number[], dtype: tf.DataType, backend?: unknown): tf.Tensor;
}

export interface RecordOptions {
  /**
   * 'full' runs every kernel. 'shapes' runs the heavy kernels (matmuls, convolutions, the
   * deformable sampling: nearly all of a forward's time) as zeros of their output shape: the
   * recording is the same (the forward's control flow and host-made constants depend on shapes
   * only; the host selection reads values but is a host input), only the values along the way are
   * not the network's. The large models record in seconds instead of minutes this way.
   */
  compute?: 'full' | 'shapes';
  /**
   * Encoder tokens per chunk of the recorded forward (the inference option of the same name):
   * the graph then holds the chunks too, which bounds its memory at large inputs as it does
   * TF.js's. Default: none below 32,768 tokens, 16,384 above.
   */
  chunkRows?: number;
  /**
   * Told each time the recording reaches a module (the parameters under one dotted prefix) whose
   * weights no kernel had used yet, with the number reached and the number of modules among `weights`.
   */
  onModule?: (reached: number, total: number) => void;
}

/** The module of a parameter: its dotted name without the last part. */
const moduleOf = (name: string): string => name.slice(0, Math.max(0, name.lastIndexOf('.')));

/**
 * Runs `fn` and records every kernel it calls (kernels called from inside a kernel are part of
 * it). `inputs` names the caller's tensors that are graph inputs, `weights` the parameters.
 * Tensors the code makes from a host copy of a recorded value (a detach) are recorded as the
 * same value. `recordedValue` gives the recorded value that a tensor of the call is (e.g. one it
 * returned), or undefined for a tensor the recording never saw.
 */
export function recordKernels<T>(
  fn: () => T,
  inputs: ReadonlyMap<tf.Tensor, string>,
  weights: ReadonlyMap<string, tf.Tensor>,
  options: RecordOptions = {},
): { result: T; recording: Recording; recordedValue: (t: tf.Tensor) => RecordedValue | undefined } {
  const shapesOnly = options.compute === 'shapes';
  const engine = tf.engine() as unknown as EngineInternals;
  const values = new Map<string, RecordedValue>();
  const byId = new Map<number, string>();
  const byDataId = new Map<object, string>();
  const readArrays = new Map<unknown, HostRead>();
  const kernels: RecordedKernel[] = [];
  const reads: HostRead[] = [];
  const hostInputs: HostInputEvent[] = [];
  const dataInputs: string[] = [];
  const stageEnds: StageEndEvent[] = [];
  let constants = 0;
  // Values are numbered in the order the recording made them (not by tensor id, which counts every
  // tensor the process made before), so that two recordings of the same code give the same names.
  let made = 0;
  let depth = 0;
  let reading = false;

  const define = (t: tf.Tensor, value: RecordedValue): string => {
    if (values.has(value.name)) throw new Error(`recordKernels: two values named '${value.name}'`);
    values.set(value.name, value);
    byId.set(t.id, value.name);
    byDataId.set(t.dataId, value.name);
    return value.name;
  };
  for (const [t, name] of inputs) define(t, { name, shape: t.shape, dtype: t.dtype, source: 'input' });
  for (const [name, t] of weights) define(t, { name, shape: t.shape, dtype: t.dtype, source: 'weight' });
  const modules = new Set([...weights.keys()].map(moduleOf));
  const reached = new Set<string>();
  const reach = (name: string): void => {
    if (!options.onModule || values.get(name)?.source !== 'weight') return;
    const module = moduleOf(name);
    if (reached.has(module)) return;
    reached.add(module);
    options.onModule(reached.size, modules.size);
  };

  const alias = (t: tf.Tensor, source: string): string => {
    const value = getOrThrow(values, source, 'recordKernels: recorded values');
    if (tf.util.arraysEqual(value.shape, t.shape)) {
      byId.set(t.id, source);
      return source;
    }
    const name = `v${made++}`;
    values.set(name, { name, shape: t.shape, dtype: t.dtype, source: 'kernel' });
    kernels.push({
      kernel: 'Reshape',
      inputs: [{ key: 'x', value: source }],
      outputs: [name],
      attrs: { shape: t.shape },
    });
    byId.set(t.id, name);
    return name;
  };
  const nameOf = (t: tf.Tensor): string => {
    const known = byId.get(t.id);
    if (known !== undefined) return known;
    const sameData = byDataId.get(t.dataId);
    if (sameData !== undefined) {
      const same = getOrThrow(values, sameData, 'recordKernels: recorded values');
      if (same.dtype === t.dtype && tf.util.sizeFromShape(same.shape) === t.size) return alias(t, sameData);
    }
    // Built on the host during the forward: a constant (its values are read now, unrecorded).
    reading = true;
    const data = (tf.engine() as unknown as EngineInternals).readSync(t.dataId).slice();
    reading = false;
    return define(t, {
      name: `const_${constants++}`,
      shape: t.shape,
      dtype: t.dtype,
      source: 'constant',
      data,
      afterRead: reads.length > 0,
    });
  };

  const own = engine as unknown as Record<string, unknown>;
  if (Object.hasOwn(own, 'runKernel'))
    throw new Error('recordKernels: a recording is already running (recordings do not nest)');
  const runKernel = engine.runKernel;
  const readSync = engine.readSync;
  const makeTensor = engine.makeTensor;
  own.runKernel = function (
    this: EngineInternals,
    name: string,
    kernelInputs: Record<string, tf.Tensor>,
    attrs: Record<string, unknown>,
  ) {
    if (depth > 0) return runKernel.call(this, name, kernelInputs, attrs);
    const named = Object.entries(kernelInputs)
      .filter(([, t]) => t != null)
      .map(([key, t]) => ({ key, value: nameOf(t) }));
    for (const input of named) reach(input.value);
    depth++;
    let out: tf.Tensor | tf.Tensor[];
    try {
      const skipped = shapesOnly ? skippedKernelShape(name, kernelInputs, attrs) : null;
      out = skipped
        ? runKernel.call(this, 'Fill', {}, { shape: skipped, value: 0, dtype: 'float32' })
        : runKernel.call(this, name, kernelInputs, attrs);
    } finally {
      depth--;
    }
    const list = Array.isArray(out) ? out : [out];
    const outputs = list.map((t) =>
      define(t, { name: `v${made++}`, shape: t.shape, dtype: t.dtype, source: 'kernel' }),
    );
    kernels.push({ kernel: name, inputs: named, outputs, attrs: { ...(attrs ?? {}) } });
    return out;
  };
  own.readSync = function (this: EngineInternals, dataId: object) {
    const data = readSync.call(this, dataId);
    const name = byDataId.get(dataId);
    if (!reading && depth === 0 && name !== undefined) {
      const read = { value: name, kernelCount: kernels.length, copied: false };
      reads.push(read);
      readArrays.set(data, read);
    }
    return data;
  };
  own.makeTensor = function (
    this: EngineInternals,
    data: unknown,
    shape: number[],
    dtype: tf.DataType,
    backend?: unknown,
  ) {
    const t = makeTensor.call(this, data, shape, dtype, backend);
    const read = depth === 0 ? readArrays.get(data) : undefined;
    if (read) {
      const source = getOrThrow(values, read.value, 'recordKernels: recorded values');
      // A host copy of a recorded value (a detach): the same value.
      if (source.dtype === dtype && tf.util.sizeFromShape(source.shape) === t.size) {
        read.copied = true;
        alias(t, read.value);
      }
    }
    return t;
  };
  const previousListener = setGraphInputListener((name, t, kind) => {
    if (byId.has(t.id)) throw new Error(`recordKernels: ${kind} input '${name}' is already a recorded value`);
    if (kind === 'host') {
      define(t, { name, shape: t.shape, dtype: t.dtype, source: 'host-input' });
      hostInputs.push({ value: name, kernelCount: kernels.length });
      return;
    }
    // The unwrapped read: the values are the caller's, not a read of the forward.
    const data = readSync.call(engine, t.dataId).slice();
    define(t, { name, shape: t.shape, dtype: t.dtype, source: 'input', data });
    dataInputs.push(name);
  });
  const previousStageListener = setStageEndListener((stage) => stageEnds.push({ stage, kernelCount: kernels.length }));
  try {
    const result = fn();
    const recordedValue = (t: tf.Tensor): RecordedValue | undefined => {
      const name = byId.get(t.id);
      return name === undefined ? undefined : values.get(name);
    };
    return { result, recording: { kernels, values, reads, hostInputs, dataInputs, stageEnds }, recordedValue };
  } finally {
    delete own.runKernel;
    delete own.readSync;
    delete own.makeTensor;
    setGraphInputListener(previousListener);
    setStageEndListener(previousStageListener);
  }
}

const SAME_SHAPE = new Set([
  'Identity',
  'Abs',
  'Exp',
  'Log',
  'Sqrt',
  'Neg',
  'Relu',
  'Sigmoid',
  'Tanh',
  'Erf',
  'Sin',
  'Cos',
  'Floor',
  'Reciprocal',
  'Rsqrt',
  'Square',
  'LeakyRelu',
  'ClipByValue',
  'Softmax',
]);
const BROADCAST = new Set(['Add', 'Sub', 'Multiply', 'RealDiv', 'Maximum', 'Minimum', 'Pow', 'SquaredDifference']);
const REDUCTIONS: Record<string, string> = { Mean: 'axis', Sum: 'axis', Max: 'reductionIndices', Min: 'axis' };

/**
 * The output shape of a kernel that 'shapes' recording does not run (null: run it): the heavy
 * kernels and the float element-wise, transpose, slice, concat, pad, tile and reduction kernels,
 * which are the time of a forward; reshapes, gathers and integer kernels run.
 */
export function skippedKernelShape(
  name: string,
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, unknown>,
): number[] | null {
  const all = Object.values(inputs).filter((t) => t != null);
  const input = (key: string): tf.Tensor => required(inputs[key], `${name}: input '${key}'`);
  if (all.some((t) => t.dtype !== 'float32')) return null;
  if (SAME_SHAPE.has(name)) return all[0]!.shape;
  if (BROADCAST.has(name)) return tf.broadcast_util.assertAndGetBroadcastShape(all[0]!.shape, all[1]!.shape);
  if (name === 'Transpose') return (attrs.perm as number[]).map((p) => input('x').shape[p]!);
  if (name === 'Slice') {
    const begin = attrs.begin as number[];
    return (attrs.size as number[]).map((n, i) => (n === -1 ? input('x').shape[i]! - begin[i]! : n));
  }
  if (name === 'Concat') {
    const rank = all[0]!.shape.length;
    const axis = (attrs.axis as number) < 0 ? (attrs.axis as number) + rank : (attrs.axis as number);
    return all[0]!.shape.map((d, i) => (i === axis ? all.reduce((a, t) => a + t.shape[i]!, 0) : d));
  }
  if (name === 'Tile') return input('x').shape.map((d, i) => d * (attrs.reps as number[])[i]!);
  if (name === 'PadV2')
    return input('x').shape.map((d, i) => d + (attrs.paddings as number[][])[i]!.reduce((a, p) => a + p));
  if (name in REDUCTIONS) {
    const shape = input('x').shape;
    const axis = attrs[REDUCTIONS[name]!] as number | number[] | null | undefined;
    const axes = axis == null ? shape.map((_, i) => i) : Array.isArray(axis) ? axis : [axis];
    const reduced = new Set(axes.map((a) => (a < 0 ? a + shape.length : a)));
    return attrs.keepDims ? shape.map((d, i) => (reduced.has(i) ? 1 : d)) : shape.filter((_, i) => !reduced.has(i));
  }
  if (name === 'BatchMatMul' || name === '_FusedMatMul') {
    const a = input('a').shape;
    const b = input('b').shape;
    const m = attrs.transposeA ? a[a.length - 1]! : a[a.length - 2]!;
    const n = attrs.transposeB ? b[b.length - 2]! : b[b.length - 1]!;
    const batch = tf.broadcast_util.assertAndGetBroadcastShape(a.slice(0, -2), b.slice(0, -2));
    return [...batch, m, n];
  }
  if (name === 'Conv2D' || name === 'FusedConv2D') {
    const info = tf.backend_util.computeConv2DInfo(
      input('x').shape as [number, number, number, number],
      input('filter').shape as [number, number, number, number],
      attrs.strides as [number, number],
      (attrs.dilations as [number, number] | undefined) ?? 1,
      attrs.pad as 'same',
      attrs.dimRoundingMode as 'floor' | undefined,
      false,
      attrs.dataFormat === 'NCHW' ? 'channelsFirst' : 'channelsLast',
    );
    return info.outShape;
  }
  if (name === MS_DEFORM_ATTN) {
    const [batch, , heads, dHead] = input('value').shape as [number, number, number, number];
    return [batch, input('attentionWeights').shape[1]!, heads * dHead];
  }
  return null;
}

/**
 * Differences between two recordings of the same code on different data (an empty list when
 * they agree): a different kernel sequence or attributes means the control flow depends on the
 * data; a constant with other values means host arithmetic on read-back values that no hostInput
 * names, which an exported graph would freeze.
 */
export function recordingDifferences(a: Recording, b: Recording): string[] {
  const out: string[] = [];
  if (a.kernels.length !== b.kernels.length) return [`${a.kernels.length} kernels vs ${b.kernels.length}`];
  const renames = new Map<string, string>();
  const same = (x: string, y: string) => (renames.get(x) ?? x) === y;
  a.kernels.forEach((k, i) => {
    const l = b.kernels[i]!;
    if (k.kernel !== l.kernel || JSON.stringify(k.attrs) !== JSON.stringify(l.attrs)) {
      out.push(`kernel ${i}: ${k.kernel} ${JSON.stringify(k.attrs)} vs ${l.kernel} ${JSON.stringify(l.attrs)}`);
      return;
    }
    k.outputs.forEach((o, j) => renames.set(o, l.outputs[j]!));
    k.inputs.forEach((input, j) => {
      const other = l.inputs[j]!;
      const va = getOrThrow(a.values, input.value, 'the first recording: values');
      const vb = getOrThrow(b.values, other.value, 'the second recording: values');
      if (va.source !== vb.source)
        out.push(`kernel ${i} (${k.kernel}) input ${input.key}: ${va.source} vs ${vb.source}`);
      else if (va.source !== 'kernel' && va.source !== 'constant' && va.name !== vb.name)
        out.push(`kernel ${i} (${k.kernel}) input ${input.key}: ${va.name} vs ${vb.name}`);
      else if (va.source === 'constant') {
        const da = required(va.data, `the first recording: the data of constant ${va.name}`);
        const db = required(vb.data, `the second recording: the data of constant ${vb.name}`);
        const equal = da.length === db.length && da.every((v, n) => Object.is(v, db[n]));
        if (!equal)
          out.push(
            `kernel ${i} (${k.kernel}) input ${input.key}: constant [${va.shape.join(', ')}] differs between runs${va.afterRead ? ' (made after a host read: name it with hostInput)' : ''}`,
          );
      } else if (va.source === 'kernel' && !same(va.name, vb.name)) {
        out.push(`kernel ${i} (${k.kernel}) input ${input.key}: comes from a different kernel`);
      }
    });
  });
  return out;
}
