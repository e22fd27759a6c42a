import { tf } from '../engine/engine.js';
import type { Module } from '../modeling/module.js';

/**
 * Loading PyTorch (released APE) tensors into this project's modules by name. Parameter names are
 * the checkpoint's with a module prefix stripped; layouts differ where TF.js wants another order:
 * - 'linear': torch Linear / packed projection weights [out, in] -> [in, out]
 * - 'conv':   torch Conv2d [out, in, kh, kw] -> HWIO [kh, kw, in, out]; the same permutation
 *             turns ConvTranspose2d [in, out, kh, kw] into TF's conv2dTranspose layout [kh, kw, out, in]
 * - 'asIs':   everything else (biases, norms, embedding tables, pos_embed, text_projection).
 */
export type ReleasedLayout = 'linear' | 'conv' | 'asIs';

/** A tensor as the checkpoint readers return it (torch reader, safetensors reader). */
export interface SourceTensor {
  dtype: string;
  shape: number[];
  data: ArrayLike<number> | BigInt64Array | Float32Array;
}

/**
 * The default layout rule: rank-4 tensors are convolutions; rank-2 `*.weight` / `*_weight` are
 * linear layers unless they are embedding tables (name contains "embedding" or "embed."); the rest
 * are kept as they are. Modules whose names break this rule pass `layoutOf` overrides.
 */
export function defaultReleasedLayout(name: string, rank: number): ReleasedLayout {
  if (rank === 4) return 'conv';
  if (rank === 2 && /(\.|_)weight$/.test(name) && !/embedding|embed\./.test(name)) return 'linear';
  return 'asIs';
}

/** Reorders a torch-layout float array into the project layout; returns the new shape and data. */
export function convertReleasedTensor(layout: ReleasedLayout, shape: number[], data: Float32Array): { shape: number[]; data: Float32Array } {
  if (layout === 'asIs') return { shape: [...shape], data };
  if (layout === 'linear') {
    if (shape.length !== 2) throw new Error(`convertReleasedTensor: a linear weight must be 2-D, got [${shape.join(', ')}]`);
    const [o, i] = shape as [number, number];
    const out = new Float32Array(o * i);
    for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) out[c * o + r] = data[r * i + c]!;
    return { shape: [i, o], data: out };
  }
  if (shape.length !== 4) throw new Error(`convertReleasedTensor: a conv weight must be 4-D, got [${shape.join(', ')}]`);
  const [a, b, kh, kw] = shape as [number, number, number, number];
  const out = new Float32Array(a * b * kh * kw);
  // [a, b, kh, kw] -> [kh, kw, b, a]
  for (let p = 0; p < a; p++) {
    for (let q = 0; q < b; q++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) out[((y * kw + x) * b + q) * a + p] = data[((p * b + q) * kh + y) * kw + x]!;
      }
    }
  }
  return { shape: [kh, kw, b, a], data: out };
}

/** Float32 view of a source tensor's values (F32, F16 already upcast by the reader, F64, integers). */
export function sourceToFloat32(name: string, t: SourceTensor): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  if (t.data instanceof Uint16Array && (t.dtype === 'F16' || t.dtype === 'BF16')) {
    throw new Error(`${name}: ${t.dtype} tensor given as raw bits; read the checkpoint with upcastHalf: true`);
  }
  if (t.data instanceof BigInt64Array) return Float32Array.from(t.data, (v) => Number(v));
  return Float32Array.from(t.data as ArrayLike<number>);
}

export interface LoadReleasedOptions {
  /** Prefix of this module's keys in the checkpoint (e.g. `model_vision.backbone.net.`). */
  prefix: string;
  /** Layout per parameter name (module-relative); falls back to defaultReleasedLayout. */
  layoutOf?: (name: string, rank: number) => ReleasedLayout | undefined;
  /** Throw when a module parameter has no tensor in the source (default true). */
  strict?: boolean;
}

export interface LoadReport {
  /** Module parameter names that were assigned. */
  loaded: string[];
  /** Module parameter names with no tensor in the source. */
  missing: string[];
  /** Source keys under the prefix that no parameter took (e.g. RoPE buffers, logit_scale). */
  unused: string[];
}

/**
 * Assigns every parameter of `module` from `source` (checkpoint key -> tensor), converting
 * layouts, and checks shapes: a mismatch throws naming the key and both shapes.
 */
export function loadReleasedWeights(module: Module, source: Map<string, SourceTensor>, options: LoadReleasedOptions): LoadReport {
  const { prefix } = options;
  const strict = options.strict ?? true;
  const params = module.namedParameters();
  const report: LoadReport = { loaded: [], missing: [], unused: [] };
  for (const [name, variable] of params) {
    const key = prefix + name;
    const tensor = source.get(key);
    if (!tensor) {
      report.missing.push(name);
      continue;
    }
    const layout = options.layoutOf?.(name, tensor.shape.length) ?? defaultReleasedLayout(name, tensor.shape.length);
    const converted = convertReleasedTensor(layout, tensor.shape, sourceToFloat32(key, tensor));
    const want = variable.shape;
    const sameSize = converted.shape.reduce((a, b) => a * b, 1) === want.reduce((a, b) => a * b, 1);
    const sameShape = converted.shape.length === want.length && converted.shape.every((d, i) => d === want[i]);
    // A leading/trailing singleton difference (e.g. [1, N, C] vs [N, C]) is a reshape, not a mismatch.
    const squeezedEqual = sameSize && converted.shape.filter((d) => d !== 1).join(',') === want.filter((d) => d !== 1).join(',');
    if (!sameShape && !squeezedEqual) {
      throw new Error(`${key}: checkpoint shape [${tensor.shape.join(', ')}] (${layout} -> [${converted.shape.join(', ')}]) does not fit parameter '${name}' [${want.join(', ')}]`);
    }
    const value = tf.tensor(converted.data, want, 'float32');
    variable.assign(value);
    value.dispose();
    report.loaded.push(name);
  }
  for (const key of source.keys()) {
    if (key.startsWith(prefix) && !params.has(key.slice(prefix.length))) report.unused.push(key.slice(prefix.length));
  }
  if (strict && report.missing.length > 0) {
    throw new Error(`loadReleasedWeights: ${report.missing.length} parameter(s) missing under '${prefix}': ${report.missing.slice(0, 8).join(', ')}${report.missing.length > 8 ? ', ...' : ''}`);
  }
  return report;
}
