import { tf } from '../engine/engine.js';
import type { Rng } from '../util/random.js';
import { Module, init } from '../nn/module.js';
import { Linear } from '../nn/linear.js';
import { LayerNorm } from '../nn/layer-norm.js';
import { gelu } from '../nn/gelu.js';

/** Plain-object description of a CLIP / EVA-CLIP text tower. */
export interface ClipTextConfig {
  vocabSize: number;
  contextLength: number;
  width: number;
  heads: number;
  layers: number;
  /** MLP hidden = width * mlpRatio (CLIP: 4). */
  mlpRatio: number;
  /** Output width of text_projection. */
  embedDim: number;
  /** nn.LayerNorm default 1e-5. */
  layerNormEps: number;
}

/** EVA02-CLIP-bigE-14-plus's text tower, which APE-D and APE-Ti use (frozen). */
export function eva02ClipBigETextConfig(): ClipTextConfig {
  return {
    vocabSize: 49408,
    contextLength: 77,
    width: 1280,
    heads: 20,
    layers: 32,
    mlpRatio: 4,
    embedDim: 1024,
    layerNormEps: 1e-5,
  };
}

/** The CPU-trainable size: width 128, 2 layers, over a small (word-level) vocabulary. */
export function tinyTextConfig(vocabSize: number, contextLength = 16, embedDim = 128): ClipTextConfig {
  return { vocabSize, contextLength, width: 128, heads: 4, layers: 2, mlpRatio: 4, embedDim, layerNormEps: 1e-5 };
}

/** How a prompt's token states become one vector. */
export type TextPooling = 'eot' | 'mean';

export interface ClipTextForwardOptions {
  /**
   * 'eot' (released APE): the final-LN state at the end-of-text token (argmax of the ids) times
   * text_projection. 'mean' (the paper): the mean of the projected states over positions
   * 0..eot (start and end tokens included), i.e. where attentionMask is 1.
   */
  pooling?: TextPooling;
  /**
   * Also return lastHiddenState. By default the sequence is cut after the longest prompt's end
   * token: with the causal mask, later positions never affect earlier ones, so the pooled
   * output is the same and short prompts cost far less. `fullLength` keeps all contextLength positions.
   */
  returnHidden?: boolean;
  fullLength?: boolean;
  /** Receives kept copies of `resblock_out.N` ([N, L, width]); the caller disposes them. */
  intermediates?: Map<string, tf.Tensor>;
}

export interface ClipTextOutput {
  /** [N, embedDim] one vector per prompt (not normalised). */
  embeddings: tf.Tensor2D;
  /** [N, L, embedDim] ln_final(x) @ text_projection at every position (only with returnHidden). */
  lastHiddenState: tf.Tensor3D | null;
  /** [N, L] int32, 1 for positions <= the end token. */
  attentionMask: tf.Tensor2D;
  /** Per prompt, the end-of-text position (argmax of its ids). */
  endTokenIdx: number[];
}

/** nn.MultiheadAttention with packed in_proj (rows q, k, v in torch; stored [width, 3*width] here). */
export class PackedSelfAttention extends Module {
  readonly inProjWeight: tf.Variable;
  readonly inProjBias: tf.Variable;
  readonly outProj: Linear;

  constructor(
    readonly width: number,
    readonly heads: number,
    rng: Rng,
  ) {
    super();
    this.inProjWeight = this.param('in_proj_weight', [width, 3 * width], init.xavierUniform(), rng);
    this.inProjBias = this.param('in_proj_bias', [3 * width], init.zeros(), rng);
    this.outProj = this.child('out_proj', new Linear(width, width, rng, { biasInit: init.zeros() }));
  }

  /** x [B, L, W]; mask [L, L] additive (0 or a large negative) or null. */
  forward(x: tf.Tensor3D, mask: tf.Tensor2D | null): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, l, w] = x.shape;
      const h = this.heads;
      const d = w / h;
      const qkv = tf.add(tf.matMul(tf.reshape(x, [b * l, w]), this.inProjWeight), this.inProjBias);
      // [B*L, 3, W] -> [3, B*L, W]: q, k and v become contiguous blocks along axis 0.
      const parts = tf.transpose(tf.reshape(qkv, [b * l, 3, w]), [1, 0, 2]);
      const part = (i: number): tf.Tensor3D => {
        const t = tf.reshape(tf.slice(parts, [i, 0, 0], [1, b * l, w]), [b, l, h, d]);
        return tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [b * h, l, d]) as tf.Tensor3D;
      };
      const q = tf.mul(part(0), d ** -0.5) as tf.Tensor3D;
      let scores: tf.Tensor = tf.matMul(q, part(1), false, true);
      if (mask) scores = tf.add(scores, mask);
      const out = tf.matMul(tf.softmax(scores), part(2));
      const merged = tf.reshape(tf.transpose(tf.reshape(out, [b, h, l, d]), [0, 2, 1, 3]), [b * l, w]);
      return tf.reshape(this.outProj.forward(merged), [b, l, w]) as tf.Tensor3D;
    });
  }
}

/** CLIP ResidualAttentionBlock: pre-LN attention and a GELU MLP (c_fc, c_proj). */
export class ClipResidualBlock extends Module {
  readonly ln1: LayerNorm;
  readonly attn: PackedSelfAttention;
  readonly ln2: LayerNorm;
  readonly cFc: Linear;
  readonly cProj: Linear;

  constructor(config: ClipTextConfig, rng: Rng) {
    super();
    const { width, heads, layerNormEps } = config;
    const hidden = Math.round(width * config.mlpRatio);
    this.ln1 = this.child('ln_1', new LayerNorm(width, rng, layerNormEps));
    this.attn = this.child('attn', new PackedSelfAttention(width, heads, rng));
    this.ln2 = this.child('ln_2', new LayerNorm(width, rng, layerNormEps));
    const mlp = this.child('mlp', new ClipMlp());
    this.cFc = mlp.add(
      'c_fc',
      new Linear(width, hidden, rng, { weightInit: init.normal((2 * width) ** -0.5), biasInit: init.zeros() }),
    );
    this.cProj = mlp.add(
      'c_proj',
      new Linear(hidden, width, rng, {
        weightInit: init.normal(width ** -0.5 * (2 * config.layers) ** -0.5),
        biasInit: init.zeros(),
      }),
    );
  }

  forward(x: tf.Tensor3D, mask: tf.Tensor2D | null): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, l, w] = x.shape;
      const attended = tf.add(x, this.attn.forward(this.ln1.forward(x) as tf.Tensor3D, mask));
      const hidden = gelu(this.cFc.forward(tf.reshape(this.ln2.forward(attended), [b * l, w])));
      return tf.add(attended, tf.reshape(this.cProj.forward(hidden), [b, l, w])) as tf.Tensor3D;
    });
  }
}

/** Holder for the MLP's two linears so that they are named mlp.c_fc / mlp.c_proj. */
class ClipMlp extends Module {
  add(name: string, m: Linear): Linear {
    return this.child(name, m);
  }
}

/** Holder for `transformer.resblocks.N`. */
class ClipTransformerStack extends Module {
  readonly resblocks: ClipResidualBlock[];

  constructor(config: ClipTextConfig, rng: Rng) {
    super();
    this.resblocks = this.childList(
      'resblocks',
      Array.from({ length: config.layers }, () => new ClipResidualBlock(config, rng)),
    );
  }
}

/** The text transformer proper (EVA-CLIP TextTransformer), parameter names as under `text.`. */
export class ClipTextTransformer extends Module {
  readonly positionalEmbedding: tf.Variable;
  readonly textProjection: tf.Variable;
  readonly tokenEmbedding: tf.Variable;
  readonly transformer: ClipTransformerStack;
  readonly lnFinal: LayerNorm;

  constructor(
    readonly config: ClipTextConfig,
    rng: Rng,
  ) {
    super();
    const { vocabSize, contextLength, width, embedDim } = config;
    // Registration order follows the released state dict.
    this.positionalEmbedding = this.param('positional_embedding', [contextLength, width], init.normal(0.01), rng);
    this.textProjection = this.param('text_projection', [width, embedDim], init.normal(width ** -0.5), rng);
    const tokens = this.child('token_embedding', new EmbeddingTable());
    this.tokenEmbedding = tokens.create(vocabSize, width, rng);
    this.transformer = this.child('transformer', new ClipTransformerStack(config, rng));
    this.lnFinal = this.child('ln_final', new LayerNorm(width, rng, config.layerNormEps));
  }
}

class EmbeddingTable extends Module {
  create(rows: number, width: number, rng: Rng): tf.Variable {
    return this.param('weight', [rows, width], init.normal(0.02), rng);
  }
}

/** [L, L] additive causal mask: 0 on and below the diagonal, -1e9 above (exactly 0 after softmax, unlike -inf safe for gradients). */
export function causalMask(length: number): tf.Tensor2D {
  const m = new Float32Array(length * length);
  for (let i = 0; i < length; i++) for (let j = i + 1; j < length; j++) m[i * length + j] = -1e9;
  return tf.tensor2d(m, [length, length]);
}

/**
 * EVA02-CLIP text tower as APE wraps it (ape/modeling/text/clip_wrapper_eva02.py): token +
 * position embedding, causal pre-LN blocks, ln_final, then a per-prompt vector (end-of-text token
 * by default). Parameter names are the released ones with `model_vision.model_language.net.`
 * stripped (`text.token_embedding.weight`, `text.transformer.resblocks.0.attn.in_proj_weight`, ...).
 */
export class ClipTextEncoder extends Module {
  readonly text: ClipTextTransformer;

  constructor(
    readonly config: ClipTextConfig,
    rng: Rng,
  ) {
    super();
    const c = config;
    for (const key of ['vocabSize', 'contextLength', 'width', 'heads', 'layers', 'embedDim'] as const) {
      if (!Number.isInteger(c[key]) || c[key] <= 0)
        throw new Error(`ClipTextConfig: ${key} must be a positive integer, got ${c[key]}`);
    }
    if (c.width % c.heads !== 0)
      throw new Error(`ClipTextConfig: width ${c.width} is not divisible by heads ${c.heads}`);
    this.text = this.child('text', new ClipTextTransformer(config, rng));
  }

  get embedDim(): number {
    return this.config.embedDim;
  }

  /** Encodes rows of token ids (as a tokenizer returns them: sot ... eot, zero-padded). */
  forward(ids: readonly (readonly number[])[], options: ClipTextForwardOptions = {}): ClipTextOutput {
    const batch = textTokenBatch(ids, this.config, {
      pooling: options.pooling ?? 'eot',
      length: options.fullLength ? this.config.contextLength : undefined,
    });
    const { rows: n, length } = batch;
    const idsTensor = tf.tensor1d(batch.ids, 'int32');
    const weights = tf.tensor3d(batch.poolWeights, [n, length, 1]);
    const [embeddings, lastHiddenState] = this.encodeTokens(idsTensor, weights, {
      returnHidden: options.returnHidden,
      intermediates: options.intermediates,
    });
    tf.dispose([idsTensor, weights]);
    return {
      embeddings,
      lastHiddenState,
      attentionMask: tf.tensor2d(batch.attentionMask, [n, length], 'int32'),
      endTokenIdx: batch.endTokenIdx,
    };
  }

  /**
   * The tower's tensor work over a prepared batch (textTokenBatch): `ids` [n * L] int32 token ids,
   * `poolWeights` [n, L, 1] each row's pooling weights over its positions -> [n, embedDim] pooled
   * vectors (and [n, L, embedDim] projected states with returnHidden). The ONNX export records this
   * (src/onnx/text-export.ts) with both as graph inputs.
   */
  encodeTokens(
    ids: tf.Tensor1D,
    poolWeights: tf.Tensor3D,
    options: Pick<ClipTextForwardOptions, 'returnHidden' | 'intermediates'> = {},
  ): [tf.Tensor2D, tf.Tensor3D | null] {
    const { contextLength, width } = this.config;
    const [n, length] = poolWeights.shape;
    if (ids.size !== n * length)
      throw new Error(`ClipTextEncoder.encodeTokens: ${ids.size} ids for ${n} rows of ${length} positions`);
    if (length > contextLength)
      throw new Error(`ClipTextEncoder.encodeTokens: ${length} positions, the context holds ${contextLength}`);
    const taps = options.intermediates;
    const t = this.text;
    const [embeddings, lastHiddenState] = tf.tidy(() => {
      const tokens = tf.gather(t.tokenEmbedding, ids);
      const positions =
        length === contextLength ? t.positionalEmbedding : tf.slice(t.positionalEmbedding, [0, 0], [length, width]);
      let x = tf.add(tf.reshape(tokens, [n, length, width]), positions) as tf.Tensor3D;
      const mask = causalMask(length);
      t.transformer.resblocks.forEach((block, i) => {
        // A block's intermediates are freed once its output is made, and the previous output then
        // too (a gradient tape keeps what it saves): the export's 64 x 77 bucket of the released
        // tower made ~0.5 GB of them per block, 32 blocks, which all lived to the end before.
        const next = tf.tidy(() => block.forward(x, mask));
        x.dispose();
        x = next;
        if (taps) taps.set(`resblock_out.${i}`, tf.keep(tf.clone(x)));
      });
      const normed = t.lnFinal.forward(x);
      const pooled = tf.matMul(tf.sum(tf.mul(normed, poolWeights), 1) as tf.Tensor2D, t.textProjection) as tf.Tensor2D;
      const hidden = options.returnHidden
        ? (tf.reshape(tf.matMul(tf.reshape(normed, [n * length, width]), t.textProjection), [
            n,
            length,
            this.config.embedDim,
          ]) as tf.Tensor3D)
        : null;
      return hidden ? [pooled, hidden] : [pooled];
    }) as [tf.Tensor2D, tf.Tensor3D?];
    return [embeddings, lastHiddenState ?? null];
  }
}

/** Rows of token ids made ready for the tower's tensors (ClipTextEncoder.encodeTokens): validated, cut to `length` positions. */
export interface TextTokenBatch {
  rows: number;
  /** Positions per row. */
  length: number;
  /** [rows * length] the ids of each row's first `length` positions. */
  ids: Int32Array;
  /** Per row, the end-of-text position (argmax of its ids, the first of equal ones). */
  endTokenIdx: number[];
  /** [rows * length] each row's pooling weights: 1 at its end token ('eot'), 1/(end + 1) up to it ('mean'). */
  poolWeights: Float32Array;
  /** [rows * length] 1 for positions <= the end token. */
  attentionMask: Int32Array;
}

/**
 * The host side of a text forward: checks every row (contextLength ids within the vocabulary) and
 * cuts it to `length` positions, by default just past the longest row's end token (later positions
 * never reach earlier ones through the causal mask, so the pooled vectors do not depend on it).
 */
export function textTokenBatch(
  ids: readonly (readonly number[])[],
  config: Pick<ClipTextConfig, 'contextLength' | 'vocabSize'>,
  options: { pooling: TextPooling; length?: number },
): TextTokenBatch {
  const { contextLength, vocabSize } = config;
  const n = ids.length;
  if (n === 0) throw new Error('ClipTextEncoder.forward: no prompts');
  const endTokenIdx = ids.map((row, r) => {
    if (row.length !== contextLength)
      throw new Error(`ClipTextEncoder.forward: row ${r} has ${row.length} ids, expected ${contextLength}`);
    let best = 0;
    for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
    return best;
  });
  const needed = Math.max(...endTokenIdx) + 1;
  const length = options.length ?? needed;
  if (!Number.isInteger(length) || length < needed || length > contextLength)
    throw new Error(`ClipTextEncoder.forward: length ${length} outside ${needed}..${contextLength} for these rows`);
  const flat = new Int32Array(n * length);
  ids.forEach((row, r) => {
    for (let j = 0; j < length; j++) {
      const id = row[j]!;
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize)
        throw new Error(`ClipTextEncoder.forward: id ${id} (row ${r}, position ${j}) outside 0..${vocabSize - 1}`);
      flat[r * length + j] = id;
    }
  });
  const poolWeights = new Float32Array(n * length);
  const attentionMask = new Int32Array(n * length);
  endTokenIdx.forEach((e, r) => {
    for (let j = 0; j <= e; j++) attentionMask[r * length + j] = 1;
    if (options.pooling === 'eot') poolWeights[r * length + e] = 1;
    else for (let j = 0; j <= e; j++) poolWeights[r * length + j] = 1 / (e + 1);
  });
  return { rows: n, length, ids: flat, endTokenIdx, poolWeights, attentionMask };
}
