import { tf } from '../engine/engine.js';
import type { Module } from '../nn/module.js';

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
export function convertReleasedTensor(
  layout: ReleasedLayout,
  shape: number[],
  data: Float32Array,
): { shape: number[]; data: Float32Array } {
  if (layout === 'asIs') return { shape: [...shape], data };
  if (layout === 'linear') {
    if (shape.length !== 2)
      throw new Error(`convertReleasedTensor: a linear weight must be 2-D, got [${shape.join(', ')}]`);
    const [o, i] = shape as [number, number];
    const out = new Float32Array(o * i);
    for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) out[c * o + r] = data[r * i + c]!;
    return { shape: [i, o], data: out };
  }
  if (shape.length !== 4)
    throw new Error(`convertReleasedTensor: a conv weight must be 4-D, got [${shape.join(', ')}]`);
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

/**
 * Whether a converted tensor of shape `got` can fill a parameter of shape `want`: the same shape,
 * or one that differs only by singleton axes (e.g. [1, N, C] vs [N, C], a reshape, not a mismatch).
 */
export function shapeFits(got: readonly number[], want: readonly number[]): boolean {
  const same = got.length === want.length && got.every((d, i) => d === want[i]);
  if (same) return true;
  const squeeze = (s: readonly number[]) => s.filter((d) => d !== 1).join(',');
  return got.reduce((a, b) => a * b, 1) === want.reduce((a, b) => a * b, 1) && squeeze(got) === squeeze(want);
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
export function loadReleasedWeights(
  module: Module,
  source: Map<string, SourceTensor>,
  options: LoadReleasedOptions,
): LoadReport {
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
    if (!shapeFits(converted.shape, want)) {
      throw new Error(
        `${key}: checkpoint shape [${tensor.shape.join(', ')}] (${layout} -> [${converted.shape.join(', ')}]) does not fit parameter '${name}' [${want.join(', ')}]`,
      );
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
    throw new Error(
      `loadReleasedWeights: ${report.missing.length} parameter(s) missing under '${prefix}': ${report.missing.slice(0, 8).join(', ')}${report.missing.length > 8 ? ', ...' : ''}`,
    );
  }
  return report;
}

// ---------------------------------------------------------------- whole-checkpoint key mapping

/** Every key of a released APE state dict starts with this; parameter names are the rest. */
export const RELEASED_KEY_PREFIX = 'model_vision.';

/**
 * The layout of a released key named in full (model-level names): 4-D tensors are convolutions,
 * 2-D `.weight` / `_weight` tensors are linear layers except the embedding tables
 * (nn.Embedding weights are looked up by row, never multiplied); the rest is kept as is
 * (`pos_embed`, `level_embeds`, `text_projection`, which is already [in, out], norms, biases).
 */
export function releasedLayoutOfKey(key: string, rank: number): ReleasedLayout {
  if (rank === 4) return 'conv';
  if (
    rank === 2 &&
    /(\.|_)weight$/.test(key) &&
    !/(^|\.)(token_embedding|query_embedding|tgt_embed|label_enc)\.weight$/.test(key)
  )
    return 'linear';
  return 'asIs';
}

/** One model parameter made from a released key; `part` takes one of `of` equal slices along axis 0 of a packed tensor. */
export interface ReleasedTarget {
  name: string;
  layout: ReleasedLayout;
  part?: { index: number; of: number };
}

/**
 * The model parameters a released checkpoint key becomes (none for keys outside `model_vision.`).
 * Packed tensors are split: EVA-02 ViT-Ti's fused `attn.qkv.weight` (rows q, k, v; it has no
 * sub-LN, so APE keeps q/k/v fused) into `q_proj`/`k_proj`/`v_proj`, and xformers' packed SwiGLU
 * `mlp.w12` (rows w1, w2) into `w1`/`w2`.
 */
export function releasedTargets(key: string, rank: number): ReleasedTarget[] {
  if (!key.startsWith(RELEASED_KEY_PREFIX)) return [];
  const name = key.slice(RELEASED_KEY_PREFIX.length);
  const qkv = /^(backbone\.net\.blocks\.\d+\.attn)\.qkv\.weight$/.exec(name);
  if (qkv && rank === 2) {
    return ['q_proj', 'k_proj', 'v_proj'].map((p, index) => ({
      name: `${qkv[1]}.${p}.weight`,
      layout: 'linear' as const,
      part: { index, of: 3 },
    }));
  }
  const w12 = /^(backbone\.net\.blocks\.\d+\.mlp)\.w12\.(weight|bias)$/.exec(name);
  if (w12) {
    return ['w1', 'w2'].map((p, index) => ({
      name: `${w12[1]}.${p}.${w12[2]}`,
      layout: w12[2] === 'weight' ? ('linear' as const) : ('asIs' as const),
      part: { index, of: 2 },
    }));
  }
  return [{ name, layout: releasedLayoutOfKey(key, rank) }];
}
