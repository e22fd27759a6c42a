import { tf } from '../../engine/engine.js';
import type { Rng } from '../../util/random.js';
import { Module, init } from '../../nn/module.js';
import { Linear } from '../../nn/linear.js';
import { LayerNorm } from '../../nn/layer-norm.js';
import { SwiGlu } from './swiglu.js';
import { applyRope, ropeTensors, type RopeTensors } from './rope.js';
import { windowLayout, windowPartition, windowUnpartition } from './window-attention.js';
import { absolutePositionGrid } from './position-grid.js';

/** Plain-object description of an EVA-02 ViT (ViTDet-style single-scale backbone). */
export interface Eva02VitConfig {
  /** Nominal input side (APE's img_size); informational, the token grid follows the input. */
  imgSize: number;
  patchSize: number;
  inChans: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  /** SwiGLU hidden width; APE uses int(embedDim * 4 * 2 / 3), see swigluHidden(). */
  mlpHidden: number;
  /** q and v biases (never a k bias). */
  qkvBias: boolean;
  /** Window side in tokens for the blocks listed in windowBlockIndexes. */
  windowSize: number;
  windowBlockIndexes: number[];
  /** LayerNorm over the concatenated heads before `proj` (`attn.inner_attn_ln`; APE-D yes, APE-Ti no). */
  attnSubLn: boolean;
  /** LayerNorm on the SwiGLU hidden units (`mlp.ffn_ln`). */
  mlpSubLn: boolean;
  rope: boolean;
  /** VisionRotaryEmbeddingFast pt_seq_len. */
  ptHwSeqLen: number;
  /** intp_freq: spread every grid over the pre-training positions. */
  intpFreq: boolean;
  useAbsPos: boolean;
  /** Image side the absolute position table was trained for (grid pretrainImgSize / patchSize). */
  pretrainImgSize: number;
  pretrainUseClsToken: boolean;
  layerNormEps: number;
  /** Stochastic depth, linearly increasing from 0 to this rate over the blocks (training only). */
  dropPathRate: number;
}

/** APE's SwiGLU hidden width for a model width: int(dim * mlp_ratio) with mlp_ratio = 4 * 2 / 3. */
export function swigluHidden(dim: number): number {
  return Math.trunc(dim * ((4 * 2) / 3));
}

function allBlocksExcept(depth: number, globalBlocks: number[]): number[] {
  return Array.from({ length: depth }, (_, i) => i).filter((i) => !globalBlocks.includes(i));
}

/** APE-D's backbone: EVA-02-CLIP ViT-L/16 (configs/common/backbone/vitl_eva02_clip.py). */
export function apeDVitConfig(): Eva02VitConfig {
  return {
    imgSize: 1024,
    patchSize: 16,
    inChans: 3,
    embedDim: 1024,
    depth: 24,
    numHeads: 16,
    mlpHidden: swigluHidden(1024),
    qkvBias: true,
    windowSize: 32,
    windowBlockIndexes: allBlocksExcept(24, [2, 5, 8, 11, 14, 17, 20, 23]),
    attnSubLn: true,
    mlpSubLn: true,
    rope: true,
    ptHwSeqLen: 16,
    intpFreq: true,
    useAbsPos: true,
    pretrainImgSize: 336,
    pretrainUseClsToken: true,
    layerNormEps: 1e-6,
    dropPathRate: 0.4,
  };
}

/**
 * APE-Ti's backbone: EVA-02 ViT-Ti/16 (configs/common/backbone/vitt_eva02.py, class vit_eva02.ViT
 * with subln=False, swiglu=True: fused qkv and xformers' packed SwiGLU `w12` in the released
 * checkpoint (the converter splits them into q/k/v_proj and w1/w2), no inner attention LN, no
 * ffn_ln; RoPE with intp_freq, 224-pixel pre-training grid).
 */
export function apeTiVitConfig(): Eva02VitConfig {
  return {
    imgSize: 1024,
    patchSize: 16,
    inChans: 3,
    embedDim: 192,
    depth: 12,
    numHeads: 3,
    mlpHidden: swigluHidden(192),
    qkvBias: true,
    windowSize: 14,
    windowBlockIndexes: allBlocksExcept(12, [2, 5, 8, 11]),
    attnSubLn: false,
    mlpSubLn: false,
    rope: true,
    ptHwSeqLen: 16,
    intpFreq: true,
    useAbsPos: true,
    pretrainImgSize: 224,
    pretrainUseClsToken: true,
    layerNormEps: 1e-6,
    dropPathRate: 0.8,
  };
}

/** The CPU-trainable size: 256x256 input, 16x16 tokens, 8x8 windows, blocks 2 and 5 global. */
export function tinyVitConfig(): Eva02VitConfig {
  return {
    imgSize: 256,
    patchSize: 16,
    inChans: 3,
    embedDim: 192,
    depth: 6,
    numHeads: 3,
    mlpHidden: swigluHidden(192),
    qkvBias: true,
    windowSize: 8,
    windowBlockIndexes: [0, 1, 3, 4],
    attnSubLn: true,
    mlpSubLn: true,
    rope: true,
    ptHwSeqLen: 16,
    intpFreq: true,
    useAbsPos: true,
    pretrainImgSize: 256,
    pretrainUseClsToken: true,
    layerNormEps: 1e-6,
    dropPathRate: 0.1,
  };
}

export const EVA02_VIT_PRESETS = {
  'ape-d': apeDVitConfig,
  'ape-ti': apeTiVitConfig,
  tiny: tinyVitConfig,
} as const;

export function validateVitConfig(c: Eva02VitConfig): void {
  const fail = (msg: string): never => {
    throw new Error(`Eva02VitConfig: ${msg}`);
  };
  for (const key of ['patchSize', 'inChans', 'embedDim', 'depth', 'numHeads', 'mlpHidden'] as const) {
    if (!Number.isInteger(c[key]) || c[key] <= 0) fail(`${key} must be a positive integer, got ${c[key]}`);
  }
  if (c.embedDim % c.numHeads !== 0) fail(`embedDim ${c.embedDim} is not divisible by numHeads ${c.numHeads}`);
  if (c.rope && (c.embedDim / c.numHeads) % 4 !== 0)
    fail(`RoPE needs a head dim divisible by 4, got ${c.embedDim / c.numHeads}`);
  if (c.windowBlockIndexes.length > 0 && !(c.windowSize > 0))
    fail(`windowSize must be positive when window blocks are listed`);
  for (const i of c.windowBlockIndexes)
    if (!(i >= 0 && i < c.depth)) fail(`window block index ${i} outside 0..${c.depth - 1}`);
  if (c.useAbsPos && c.pretrainImgSize % c.patchSize !== 0)
    fail(`pretrainImgSize ${c.pretrainImgSize} is not a multiple of patchSize ${c.patchSize}`);
  if (!(c.dropPathRate >= 0 && c.dropPathRate < 1)) fail(`dropPathRate must be in [0, 1), got ${c.dropPathRate}`);
}

/** Options of a forward pass. */
export interface VitForwardOptions {
  /** Training mode: enables stochastic depth (needs `rng`). */
  training?: boolean;
  rng?: Rng;
  /**
   * When given, receives kept copies of intermediates (`patch_embed`, `pos_embed_resized`,
   * `block_in`, `block_out.N`, all channels-last); the caller disposes them.
   */
  intermediates?: Map<string, tf.Tensor>;
}

/** Stochastic depth: zero a sample's residual branch with probability p, scale survivors by 1/(1-p). */
function dropPath(x: tf.Tensor, p: number, rng: Rng | undefined): tf.Tensor {
  if (p <= 0 || !rng) return x;
  const b = x.shape[0]!;
  const keep = Array.from({ length: b }, () => (rng.next() < p ? 0 : 1 / (1 - p)));
  return tf.mul(x, tf.tensor(keep, [b, ...x.shape.slice(1).map(() => 1)]));
}

/**
 * Largest score tensor computed at once. Global attention at APE-D's size (16 heads, 4096
 * tokens) would need 268M floats (1 GiB, twice with the softmax) on a wasm heap capped at 4 GiB,
 * so the (batch x head) groups are processed in chunks, each in its own tidy scope.
 */
const MAX_SCORE_ELEMENTS = 1 << 25;

/** softmax(q k^T) v over [G, N, d] groups (q already scaled), chunked along G to bound memory. */
export function scaledDotProductAttention(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  maxScoreElements = MAX_SCORE_ELEMENTS,
): tf.Tensor3D {
  const [g, n, d] = q.shape;
  const m = k.shape[1];
  const attend = (qq: tf.Tensor3D, kk: tf.Tensor3D, vv: tf.Tensor3D): tf.Tensor3D =>
    tf.matMul(tf.softmax(tf.matMul(qq, kk, false, true)), vv);
  const chunk = Math.max(1, Math.floor(maxScoreElements / (n * m)));
  if (chunk >= g) return attend(q, k, v);
  const parts: tf.Tensor3D[] = [];
  for (let start = 0; start < g; start += chunk) {
    const size = Math.min(chunk, g - start);
    parts.push(
      tf.tidy(() =>
        attend(
          tf.slice(q, [start, 0, 0], [size, n, d]),
          tf.slice(k, [start, 0, 0], [size, m, d]),
          tf.slice(v, [start, 0, 0], [size, m, d]),
        ),
      ),
    );
  }
  return tf.concat(parts, 0);
}

/** Multi-head self-attention with separate q/k/v projections, q/v biases, 2-D RoPE and optional sub-LN. */
export class Eva02Attention extends Module {
  readonly qBias: tf.Variable | null;
  readonly vBias: tf.Variable | null;
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly innerAttnLn: LayerNorm | null;
  readonly proj: Linear;
  readonly headDim: number;

  constructor(
    readonly dim: number,
    readonly numHeads: number,
    rng: Rng,
    options: { qkvBias: boolean; subLn: boolean; layerNormEps: number },
  ) {
    super();
    this.headDim = dim / numHeads;
    const weightInit = init.truncatedNormal(0.02);
    this.qBias = options.qkvBias ? this.param('q_bias', [dim], init.zeros(), rng) : null;
    this.vBias = options.qkvBias ? this.param('v_bias', [dim], init.zeros(), rng) : null;
    this.qProj = this.child('q_proj', new Linear(dim, dim, rng, { bias: false, weightInit }));
    this.kProj = this.child('k_proj', new Linear(dim, dim, rng, { bias: false, weightInit }));
    this.vProj = this.child('v_proj', new Linear(dim, dim, rng, { bias: false, weightInit }));
    this.innerAttnLn = options.subLn
      ? this.child('inner_attn_ln', new LayerNorm(dim, rng, options.layerNormEps))
      : null;
    this.proj = this.child('proj', new Linear(dim, dim, rng, { weightInit, biasInit: init.zeros() }));
  }

  /** x: [B, N, C] token groups (windows or whole images); rope tables [N, C] or null. */
  forward(x: tf.Tensor3D, rope: RopeTensors | null): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, n, c] = x.shape;
      const h = this.numHeads;
      const d = this.headDim;
      const flat = tf.reshape(x, [b * n, c]);
      let q = tf.matMul(flat, this.qProj.weight) as tf.Tensor;
      let k = tf.matMul(flat, this.kProj.weight) as tf.Tensor;
      let v = tf.matMul(flat, this.vProj.weight) as tf.Tensor;
      if (this.qBias) q = tf.add(q, this.qBias);
      if (this.vBias) v = tf.add(v, this.vBias);
      q = tf.reshape(q, [b, n, c]);
      k = tf.reshape(k, [b, n, c]);
      if (rope) {
        q = applyRope(q, rope);
        k = applyRope(k, rope);
      }
      const heads = (t: tf.Tensor): tf.Tensor3D =>
        h === 1
          ? (tf.reshape(t, [b, n, d]) as tf.Tensor3D)
          : (tf.reshape(tf.transpose(tf.reshape(t, [b, n, h, d]), [0, 2, 1, 3]), [b * h, n, d]) as tf.Tensor3D);
      const qh = heads(tf.mul(q, d ** -0.5));
      const kh = heads(k);
      const vh = heads(v);
      let out: tf.Tensor = scaledDotProductAttention(qh, kh, vh);
      out =
        h === 1
          ? tf.reshape(out, [b * n, c])
          : tf.reshape(tf.transpose(tf.reshape(out, [b, h, n, d]), [0, 2, 1, 3]), [b * n, c]);
      if (this.innerAttnLn) out = this.innerAttnLn.forward(out);
      return tf.reshape(this.proj.forward(out), [b, n, c]) as tf.Tensor3D;
    });
  }
}

/** Pre-norm transformer block; window attention when windowSize > 0, else global. */
export class Eva02Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: Eva02Attention;
  readonly norm2: LayerNorm;
  readonly mlp: SwiGlu;

  constructor(
    config: Eva02VitConfig,
    readonly windowSize: number,
    readonly dropPathProb: number,
    rng: Rng,
  ) {
    super();
    const eps = config.layerNormEps;
    this.norm1 = this.child('norm1', new LayerNorm(config.embedDim, rng, eps));
    this.attn = this.child(
      'attn',
      new Eva02Attention(config.embedDim, config.numHeads, rng, {
        qkvBias: config.qkvBias,
        subLn: config.attnSubLn,
        layerNormEps: eps,
      }),
    );
    this.norm2 = this.child('norm2', new LayerNorm(config.embedDim, rng, eps));
    this.mlp = this.child(
      'mlp',
      new SwiGlu(config.embedDim, config.mlpHidden, rng, { subLn: config.mlpSubLn, layerNormEps: eps }),
    );
  }

  /** x: [B, H, W, C]. `rope` gives the table for this block's token groups (window or whole grid). */
  forward(x: tf.Tensor4D, rope: RopeTensors | null, rng?: Rng): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape;
      const normed = this.norm1.forward(x) as tf.Tensor4D;
      let attended: tf.Tensor4D;
      if (this.windowSize > 0) {
        const layout = windowLayout(h, w, this.windowSize);
        const windows = windowPartition(normed, layout);
        attended = windowUnpartition(this.attn.forward(windows, rope), layout, b);
      } else {
        attended = tf.reshape(this.attn.forward(tf.reshape(normed, [b, h * w, c]) as tf.Tensor3D, rope), [b, h, w, c]);
      }
      const afterAttn = tf.add(x, dropPath(attended, this.dropPathProb, rng));
      const mlpOut = this.mlp.forward(tf.reshape(this.norm2.forward(afterAttn), [b * h * w, c]));
      return tf.add(afterAttn, dropPath(tf.reshape(mlpOut, [b, h, w, c]), this.dropPathProb, rng)) as tf.Tensor4D;
    });
  }
}

/** Patch embedding: a patch x patch stride-patch conv, done as patchify + one 2-D matMul. Weight HWIO. */
export class PatchEmbed extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(
    readonly patchSize: number,
    readonly inChans: number,
    readonly embedDim: number,
    rng: Rng,
  ) {
    super();
    const fanIn = patchSize * patchSize * inChans;
    const limit = 1 / Math.sqrt(fanIn);
    // Registered under `proj` like the PyTorch module (patch_embed.proj.weight).
    const holder = this.child('proj', new ConvParams());
    this.weight = holder.add('weight', [patchSize, patchSize, inChans, embedDim], init.uniform(limit), rng);
    this.bias = holder.add('bias', [embedDim], init.uniform(limit), rng);
  }

  /** images [B, H, W, inChans] -> tokens [B, H/p, W/p, C] (a remainder smaller than a patch is dropped, as the conv does). */
  forward(images: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const p = this.patchSize;
      const [b, hIn, wIn, cIn] = images.shape;
      if (cIn !== this.inChans)
        throw new Error(`PatchEmbed: expected ${this.inChans} input channels, got ${cIn} (input must be NHWC)`);
      const gh = Math.floor(hIn / p);
      const gw = Math.floor(wIn / p);
      if (gh === 0 || gw === 0) throw new Error(`PatchEmbed: image ${hIn}x${wIn} is smaller than one ${p}x${p} patch`);
      let x: tf.Tensor4D = images;
      if (gh * p !== hIn || gw * p !== wIn) x = tf.slice(images, [0, 0, 0, 0], [b, gh * p, gw * p, cIn]);
      const rows = tf.reshape(x, [b * gh, p, gw, p * cIn]);
      const patches = tf.reshape(tf.transpose(rows, [0, 2, 1, 3]), [b * gh * gw, p * p * cIn]);
      const kernel = tf.reshape(this.weight, [p * p * cIn, this.embedDim]);
      return tf.reshape(tf.add(tf.matMul(patches, kernel), this.bias), [b, gh, gw, this.embedDim]) as tf.Tensor4D;
    });
  }
}

/** A module that only holds named tensors (a conv's weight and bias under one prefix). */
class ConvParams extends Module {
  add(name: string, shape: number[], initializer: ReturnType<typeof init.zeros>, rng: Rng): tf.Variable {
    return this.param(name, shape, initializer, rng);
  }
}

/**
 * EVA-02 ViT backbone as APE uses it (ape/modeling/backbone/vit_eva_clip.py and vit_eva02.py):
 * patch embedding, absolute positions resized bicubically from the pre-training grid, blocks with
 * 2-D RoPE, window or global attention, SwiGLU MLP. Input NHWC images, output the last feature
 * map [B, H/16, W/16, C] (channels last). Parameter names follow the released checkpoints with
 * `model_vision.backbone.net.` stripped.
 */
export class Eva02Vit extends Module {
  readonly patchEmbed: PatchEmbed;
  readonly posEmbed: tf.Variable | null;
  readonly blocks: Eva02Block[];
  private readonly ropeCache = new Map<string, RopeTensors>();

  constructor(
    readonly config: Eva02VitConfig,
    rng: Rng,
  ) {
    super();
    validateVitConfig(config);
    this.patchEmbed = this.child('patch_embed', new PatchEmbed(config.patchSize, config.inChans, config.embedDim, rng));
    if (config.useAbsPos) {
      const side = config.pretrainImgSize / config.patchSize;
      const positions = side * side + (config.pretrainUseClsToken ? 1 : 0);
      this.posEmbed = this.param('pos_embed', [1, positions, config.embedDim], init.truncatedNormal(0.02), rng);
    } else {
      this.posEmbed = null;
    }
    const blocks: Eva02Block[] = [];
    for (let i = 0; i < config.depth; i++) {
      const windowSize = config.windowBlockIndexes.includes(i) ? config.windowSize : 0;
      const dpr = config.depth > 1 ? (config.dropPathRate * i) / (config.depth - 1) : 0;
      blocks.push(new Eva02Block(config, windowSize, dpr, rng));
    }
    this.blocks = this.childList('blocks', blocks);
  }

  get outChannels(): number {
    return this.config.embedDim;
  }

  get stride(): number {
    return this.config.patchSize;
  }

  /** Rotary tables for a rows x cols token group, cached (they depend only on geometry). */
  ropeFor(rows: number, cols: number): RopeTensors | null {
    if (!this.config.rope) return null;
    const key = `${rows}x${cols}`;
    let tables = this.ropeCache.get(key);
    if (!tables) {
      const { embedDim, numHeads, ptHwSeqLen, intpFreq } = this.config;
      tables = ropeTensors(rows, cols, numHeads, {
        headDim: embedDim / numHeads,
        ptSeqLen: ptHwSeqLen,
        interpolate: intpFreq,
      });
      tf.keep(tables.cos);
      tf.keep(tables.sin);
      this.ropeCache.set(key, tables);
    }
    return tables;
  }

  /** images [B, H, W, inChans] (normalised) -> last feature map [B, H/p, W/p, C]. */
  forward(images: tf.Tensor4D, options: VitForwardOptions = {}): tf.Tensor4D {
    const taps = options.intermediates;
    const tap = (name: string, t: tf.Tensor): void => {
      if (taps) taps.set(name, tf.keep(tf.clone(t)));
    };
    const rng = options.training ? options.rng : undefined;
    if (options.training && !options.rng && this.config.dropPathRate > 0) {
      throw new Error('Eva02Vit.forward: training with drop path needs options.rng');
    }
    return tf.tidy(() => {
      let x = this.patchEmbed.forward(images);
      tap('patch_embed', x);
      const [, gh, gw] = x.shape;
      if (this.posEmbed) {
        const pos = absolutePositionGrid(this.posEmbed, this.config.pretrainUseClsToken, gh, gw);
        tap('pos_embed_resized', tf.expandDims(pos, 0));
        x = tf.add(x, pos);
      }
      tap('block_in', x);
      const ws = this.config.windowSize;
      this.blocks.forEach((block, i) => {
        const rope = block.windowSize > 0 ? this.ropeFor(ws, ws) : this.ropeFor(gh, gw);
        x = block.forward(x, rope, rng);
        tap(`block_out.${i}`, x);
      });
      return x;
    });
  }

  override dispose(): void {
    for (const t of this.ropeCache.values()) {
      t.cos.dispose();
      t.sin.dispose();
    }
    this.ropeCache.clear();
    super.dispose();
  }
}
