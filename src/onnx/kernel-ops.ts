/**
 * TF.js kernels -> standard ONNX ops (opset 17). Every value keeps the TF.js layout (NHWC images);
 * ops that need NCHW transpose around themselves, and ONNX Runtime removes the transposes that
 * cancel. Shapes are the recorded ones, so shape-only kernels become Reshape to a fixed shape.
 */
import type { RecordedKernel, RecordedValue } from './kernel-recorder.js';
import type { GraphBuilder } from './graph-builder.js';
import type { OnnxElementType } from './onnx-model.js';
import { MS_DEFORM_ATTN } from '../engine/ms-deform-attn.js';
import { LAYER_NORM_KERNEL } from './fuse-layer-norm.js';

export const OPSET = 17;

export interface KernelContext {
  b: GraphBuilder;
  kernel: RecordedKernel;
  /** Input names in order. */
  inputs: string[];
  outputs: string[];
  value(name: string): RecordedValue;
}

type Mapper = (c: KernelContext) => void;

export function onnxType(dtype: string, where: string): OnnxElementType {
  if (dtype === 'float32') return 'float';
  if (dtype === 'int32') return 'int32';
  if (dtype === 'bool') return 'bool';
  throw new Error(`ONNX export: ${where} has dtype ${dtype}, which the exporter does not handle`);
}

const attr = <T>(c: KernelContext, name: string): T => c.kernel.attrs[name] as T;
const rankOf = (c: KernelContext, i = 0): number => c.value(c.kernel.inputs[i]!.value).shape.length;
const outShape = (c: KernelContext, i = 0): number[] => c.value(c.outputs[i]!).shape;

/** Axes as given (number, list or none = all) -> non-negative list. */
function axesOf(axis: number | number[] | null | undefined, rank: number): number[] {
  if (axis === null || axis === undefined) return Array.from({ length: rank }, (_, i) => i);
  return (Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a));
}

const unary =
  (op: string): Mapper =>
  (c) =>
    void c.b.op(op, [c.inputs[0]!], undefined, c.outputs[0]);
const binary =
  (op: string): Mapper =>
  (c) =>
    void c.b.op(op, [c.inputs[0]!, c.inputs[1]!], undefined, c.outputs[0]);
const reshapeToOutput: Mapper = (c) => void c.b.reshape(c.inputs[0]!, outShape(c), c.outputs[0]);

function reduce(op: string, axisAttr: string): Mapper {
  return (c) => {
    const axes = axesOf(attr(c, axisAttr), rankOf(c));
    const keepdims = attr<boolean>(c, 'keepDims') ? 1 : 0;
    // Opset 17: ReduceSum takes its axes as an input, the others as an attribute.
    if (op === 'ReduceSum') c.b.op(op, [c.inputs[0]!, c.b.int64s(axes)], { keepdims }, c.outputs[0]);
    else c.b.op(op, [c.inputs[0]!], { axes, keepdims }, c.outputs[0]);
  };
}

/** TF filter [kh, kw, in, out] -> ONNX [out, in, kh, kw]; x NHWC -> NCHW around the op. */
function conv2d(c: KernelContext): void {
  if (attr(c, 'dataFormat') !== 'NHWC') throw new Error(`ONNX export: Conv2D with dataFormat ${attr(c, 'dataFormat')}`);
  const { b } = c;
  const strides = attr<number | [number, number]>(c, 'strides');
  const dilations = attr<number | [number, number]>(c, 'dilations') ?? 1;
  const pair = (v: number | [number, number]) => (Array.isArray(v) ? v : [v, v]);
  const [kh, kw] = c.value(c.kernel.inputs[1]!.value).shape as [number, number];
  const x = b.transpose(c.inputs[0]!, [0, 3, 1, 2]);
  const w = b.transpose(c.inputs[1]!, [3, 2, 0, 1]);
  const attributes = {
    kernel_shape: [kh, kw],
    strides: pair(strides),
    dilations: pair(dilations),
    ...padAttributes(attr(c, 'pad')),
  };
  const inputs = [x, w];
  if (c.kernel.kernel === 'FusedConv2D') {
    if (c.inputs[2] !== undefined) inputs.push(c.inputs[2]);
    if (attr(c, 'activation') !== 'linear' || c.inputs.length > 3)
      throw new Error(`ONNX export: FusedConv2D with activation ${attr(c, 'activation')}`);
  }
  const y = b.op('Conv', inputs, attributes);
  b.transpose(y, [0, 2, 3, 1], c.outputs[0]);
}

function padAttributes(pad: unknown): { auto_pad: string } | { pads: number[] } {
  if (pad === 'same') return { auto_pad: 'SAME_UPPER' };
  if (pad === 'valid') return { pads: [0, 0, 0, 0] };
  if (typeof pad === 'number') return { pads: [pad, pad, pad, pad] };
  // Explicit NHWC paddings [[0, 0], [top, bottom], [left, right], [0, 0]] -> [top, left, bottom, right].
  if (Array.isArray(pad) && pad.length === 4) {
    const [, [top, bottom], [left, right]] = pad as [[number, number], [number, number], [number, number], unknown];
    return { pads: [top, left, bottom, right] };
  }
  throw new Error(`ONNX export: padding ${JSON.stringify(pad)} is not handled`);
}

function maxPool(c: KernelContext): void {
  const pair = (v: number | [number, number]) => (Array.isArray(v) ? v : [v, v]);
  if (attr(c, 'dimRoundingMode') != null) throw new Error('ONNX export: MaxPool with dimRoundingMode');
  const x = c.b.transpose(c.inputs[0]!, [0, 3, 1, 2]);
  const y = c.b.op('MaxPool', [x], {
    kernel_shape: pair(attr(c, 'filterSize')),
    strides: pair(attr(c, 'strides')),
    ...padAttributes(attr(c, 'pad')),
  });
  c.b.transpose(y, [0, 2, 3, 1], c.outputs[0]);
}

function batchMatMul(c: KernelContext): void {
  const swapLast = (name: string, rank: number) => {
    const perm = Array.from({ length: rank }, (_, i) => i);
    [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
    return c.b.transpose(name, perm);
  };
  const a = attr<boolean>(c, 'transposeA') ? swapLast(c.inputs[0]!, rankOf(c, 0)) : c.inputs[0]!;
  const bb = attr<boolean>(c, 'transposeB') ? swapLast(c.inputs[1]!, rankOf(c, 1)) : c.inputs[1]!;
  if (c.kernel.kernel === '_FusedMatMul') {
    if (attr(c, 'activation') !== 'linear' || c.inputs.length > 3)
      throw new Error(`ONNX export: _FusedMatMul with activation ${attr(c, 'activation')}`);
    const m = c.b.op('MatMul', [a, bb]);
    if (c.inputs[2] !== undefined) c.b.op('Add', [m, c.inputs[2]], undefined, c.outputs[0]);
    else c.b.op('Identity', [m], undefined, c.outputs[0]);
    return;
  }
  c.b.op('MatMul', [a, bb], undefined, c.outputs[0]);
}

function slice(c: KernelContext): void {
  const shape = c.value(c.kernel.inputs[0]!.value).shape;
  const begin = attr<number[]>(c, 'begin');
  const size = attr<number[]>(c, 'size');
  const ends = begin.map((s, i) => (size[i] === -1 ? shape[i]! : s + size[i]!));
  c.b.op(
    'Slice',
    [c.inputs[0]!, c.b.int64s(begin), c.b.int64s(ends), c.b.int64s(begin.map((_, i) => i))],
    undefined,
    c.outputs[0],
  );
}

function concat(c: KernelContext): void {
  const rank = rankOf(c);
  const axis = axesOf(attr<number>(c, 'axis'), rank)[0]!;
  if (c.inputs.length === 1) c.b.op('Identity', c.inputs, undefined, c.outputs[0]);
  else c.b.op('Concat', c.inputs, { axis }, c.outputs[0]);
}

function splitV(c: KernelContext): void {
  const axis = axesOf(attr<number>(c, 'axis'), rankOf(c))[0]!;
  const sizes = c.outputs.map((o) => c.value(o).shape[axis]!);
  c.b.multi('Split', [c.inputs[0]!, c.b.int64s(sizes)], c.outputs, { axis });
}

function pack(c: KernelContext): void {
  const axis = axesOf(attr<number>(c, 'axis'), rankOf(c) + 1)[0]!;
  const parts = c.inputs.map((name, i) => {
    const shape = [...c.value(c.kernel.inputs[i]!.value).shape];
    shape.splice(axis, 0, 1);
    return c.b.reshape(name, shape);
  });
  c.b.op('Concat', parts, { axis }, c.outputs[0]);
}

function tile(c: KernelContext): void {
  c.b.op('Tile', [c.inputs[0]!, c.b.int64s(attr<number[]>(c, 'reps'))], undefined, c.outputs[0]);
}

function gather(c: KernelContext): void {
  if ((attr<number>(c, 'batchDims') ?? 0) !== 0) throw new Error('ONNX export: GatherV2 with batchDims');
  c.b.op(
    'Gather',
    [c.inputs[0]!, c.inputs[1]!],
    { axis: axesOf(attr<number>(c, 'axis'), rankOf(c))[0]! },
    c.outputs[0],
  );
}

function clip(c: KernelContext): void {
  c.b.op(
    'Clip',
    [c.inputs[0]!, c.b.scalar('float', attr(c, 'clipValueMin')), c.b.scalar('float', attr(c, 'clipValueMax'))],
    undefined,
    c.outputs[0],
  );
}

function softmax(c: KernelContext): void {
  c.b.op('Softmax', [c.inputs[0]!], { axis: axesOf(attr<number>(c, 'dim') ?? -1, rankOf(c))[0]! }, c.outputs[0]);
}

function cast(c: KernelContext): void {
  const to = onnxType(attr<string>(c, 'dtype'), 'Cast');
  c.b.op('Cast', [c.inputs[0]!], { to: { float: 1, int32: 6, int64: 7, bool: 9 }[to] }, c.outputs[0]);
}

function pad(c: KernelContext): void {
  const paddings = attr<[number, number][]>(c, 'paddings');
  const pads = [...paddings.map((p) => p[0]), ...paddings.map((p) => p[1])];
  c.b.op(
    'Pad',
    [c.inputs[0]!, c.b.int64s(pads), c.b.scalar('float', attr<number>(c, 'constantValue') ?? 0)],
    { mode: 'constant' },
    c.outputs[0],
  );
}

const leakyRelu: Mapper = (c) =>
  void c.b.op('LeakyRelu', [c.inputs[0]!], { alpha: { float: attr<number>(c, 'alpha') } }, c.outputs[0]);
const rsqrt: Mapper = (c) => void c.b.op('Reciprocal', [c.b.op('Sqrt', [c.inputs[0]!])], undefined, c.outputs[0]);
const square: Mapper = (c) => void c.b.op('Mul', [c.inputs[0]!, c.inputs[0]!], undefined, c.outputs[0]);
const squaredDifference: Mapper = (c) => {
  const d = c.b.op('Sub', [c.inputs[0]!, c.inputs[1]!]);
  c.b.op('Mul', [d, d], undefined, c.outputs[0]);
};

/**
 * TF's bilinear resize (NHWC) as ONNX Resize (NCHW): TF's half-pixel centres are ONNX's
 * 'half_pixel' transform, align-corners its 'align_corners', neither its 'asymmetric'. Both
 * clamp samples past the edge to the edge pixel, as TF does. roi and scales are empty
 * constants: the output size is given.
 */
function resizeBilinear(c: KernelContext): void {
  const { b } = c;
  const [batch, , , channels] = c.value(c.kernel.inputs[0]!.value).shape as [number, number, number, number];
  const [h, w] = attr<[number, number]>(c, 'size');
  const mode = attr<boolean>(c, 'alignCorners')
    ? 'align_corners'
    : attr<boolean>(c, 'halfPixelCenters')
      ? 'half_pixel'
      : 'asymmetric';
  const empty = b.constant('float', [0], new Float32Array(0));
  const y = b.op('Resize', [b.transpose(c.inputs[0]!, [0, 3, 1, 2]), empty, empty, b.int64s([batch, channels, h, w])], {
    mode: 'linear',
    coordinate_transformation_mode: mode,
  });
  b.transpose(y, [0, 2, 3, 1], c.outputs[0]);
}

/**
 * The project's multi-scale deformable attention kernel as GridSample per level: each level's value
 * map [B*heads, dHead, H_l, W_l] sampled at its points (grid = 2 * location - 1 is align_corners=0
 * with zero padding, the kernel's pixel = location * size - 0.5), weighted and summed.
 */
function msDeformAttn(c: KernelContext): void {
  const { b } = c;
  const [batch, , heads, dHead] = c.value(c.kernel.inputs[0]!.value).shape as [number, number, number, number];
  const flat = attr<number[]>(c, 'spatialShapes');
  const levels = flat.length / 2;
  const weightsShape = c.value(c.kernel.inputs[2]!.value).shape;
  const numQuery = weightsShape[1]!;
  const size = weightsShape.reduce((a, v) => a * v, 1);
  const points = size / (batch * numQuery * heads * levels);
  const [value, loc, weights] = c.inputs as [string, string, string];
  // Grid and weights level-major, each in one transpose: [B, Lq, heads, L, P(, 2)] -> [L, B*heads,
  // Lq, P(, 2)], so that each level's part is a contiguous slice of axis 0 (a strided split and a
  // transpose per level moved the data twice).
  const byLevel = (x: string, inner: number[]) =>
    b.transpose(b.reshape(x, [batch, numQuery, heads, levels, ...inner]), [3, 0, 2, 1, ...inner.map((_, i) => 4 + i)]);
  const locations = byLevel(loc, [points, 2]);
  const grid = b.op('Sub', [b.op('Mul', [locations, b.scalar('float', 2)]), b.scalar('float', 1)]);
  const wts = byLevel(weights, [points]);
  const levelOf = (x: string, l: number, shape: number[]) =>
    b.reshape(b.op('Slice', [x, b.int64s([l]), b.int64s([l + 1]), b.int64s([0])]), shape);
  let summed = '';
  let start = 0;
  for (let l = 0; l < levels; l++) {
    const [h, w] = [flat[2 * l]!, flat[2 * l + 1]!];
    const rows = b.op('Slice', [value, b.int64s([start]), b.int64s([start + h * w]), b.int64s([1])]);
    start += h * w;
    // [B, HW, heads, d] -> [B, heads, d, HW] -> [B*heads, d, H, W]
    const map = b.reshape(b.transpose(rows, [0, 2, 3, 1]), [batch * heads, dHead, h, w]);
    const g = levelOf(grid, l, [batch * heads, numQuery, points, 2]);
    const sampled = b.op('GridSample', [map, g], { mode: 'bilinear', padding_mode: 'zeros', align_corners: 0 });
    // [B*heads, d, Lq, P] weighted by [B*heads, 1, Lq, P] and summed over the points; levels add
    // up (no concatenation of all levels' samples: an inner-axis concat of the largest tensor).
    const levelWeights = levelOf(wts, l, [batch * heads, 1, numQuery, points]);
    const part = b.op('ReduceSum', [b.op('Mul', [sampled, levelWeights]), b.int64s([3])], { keepdims: 0 });
    summed = l === 0 ? part : b.op('Add', [summed, part]);
  }
  // [B*heads, d, Lq] -> [B, heads, d, Lq] -> [B, Lq, heads, d] -> [B, Lq, heads*d]
  const out = b.transpose(b.reshape(summed, [batch, heads, dHead, numQuery]), [0, 3, 1, 2]);
  b.reshape(out, [batch, numQuery, heads * dHead], c.outputs[0]);
}

/** The fused layer norm (fuse-layer-norm.ts) over the last axis. */
const layerNorm: Mapper = (c) =>
  void c.b.op(
    'LayerNormalization',
    [c.inputs[0]!, c.inputs[1]!, c.inputs[2]!],
    { axis: -1, epsilon: { float: attr<number>(c, 'epsilon') } },
    c.outputs[0],
  );

const MAPPERS: Record<string, Mapper> = {
  Identity: unary('Identity'),
  Abs: unary('Abs'),
  Exp: unary('Exp'),
  Log: unary('Log'),
  Sqrt: unary('Sqrt'),
  Neg: unary('Neg'),
  Relu: unary('Relu'),
  Sigmoid: unary('Sigmoid'),
  Tanh: unary('Tanh'),
  Erf: unary('Erf'),
  Sin: unary('Sin'),
  Cos: unary('Cos'),
  Floor: unary('Floor'),
  Reciprocal: unary('Reciprocal'),
  Rsqrt: rsqrt,
  Square: square,
  LeakyRelu: leakyRelu,
  Add: binary('Add'),
  Sub: binary('Sub'),
  Multiply: binary('Mul'),
  RealDiv: binary('Div'),
  Maximum: binary('Max'),
  Minimum: binary('Min'),
  Pow: binary('Pow'),
  Greater: binary('Greater'),
  GreaterEqual: binary('GreaterOrEqual'),
  Less: binary('Less'),
  LessEqual: binary('LessOrEqual'),
  Equal: binary('Equal'),
  LogicalAnd: binary('And'),
  SquaredDifference: squaredDifference,
  Select: (c) => void c.b.op('Where', [c.inputs[0]!, c.inputs[1]!, c.inputs[2]!], undefined, c.outputs[0]),
  Mean: reduce('ReduceMean', 'axis'),
  Sum: reduce('ReduceSum', 'axis'),
  Max: reduce('ReduceMax', 'reductionIndices'),
  Min: reduce('ReduceMin', 'axis'),
  Reshape: reshapeToOutput,
  ExpandDims: reshapeToOutput,
  Squeeze: reshapeToOutput,
  Transpose: (c) => void c.b.transpose(c.inputs[0]!, attr<number[]>(c, 'perm'), c.outputs[0]),
  Slice: slice,
  Concat: concat,
  SplitV: splitV,
  Pack: pack,
  Tile: tile,
  GatherV2: gather,
  ClipByValue: clip,
  Softmax: softmax,
  Cast: cast,
  PadV2: pad,
  BatchMatMul: batchMatMul,
  _FusedMatMul: batchMatMul,
  Conv2D: conv2d,
  FusedConv2D: conv2d,
  MaxPool: maxPool,
  ResizeBilinear: resizeBilinear,
  [MS_DEFORM_ATTN]: msDeformAttn,
  [LAYER_NORM_KERNEL]: layerNorm,
};

/** Appends the ONNX nodes of one recorded kernel; an unmapped kernel is an error that names it. */
export function mapKernel(context: KernelContext): void {
  const mapper = MAPPERS[context.kernel.kernel];
  if (!mapper)
    throw new Error(
      `ONNX export: no ONNX mapping for the TF.js kernel '${context.kernel.kernel}' (attributes ${JSON.stringify(context.kernel.attrs)})`,
    );
  mapper(context);
}
