import { tf } from '../engine/engine.js';
import { Rng } from '../util/random.js';
import { Module, init, withParameterValues } from '../nn/module.js';
import { Linear } from '../nn/linear.js';
import { Mlp } from '../nn/mlp.js';
import { ApeBackbone } from './backbone/ape-backbone.js';
import { ChannelMapper } from './neck.js';
import {
  DeformableTransformer,
  type DenoisingQueries,
  type EncoderProposals,
  type TransformerOutput,
} from './deformable/transformer.js';
import type { EncoderText } from './deformable/encoder.js';
import { denoisingQueries, splitQueries, splitQueryBoxes, type DenoisingInput } from './denoising-queries.js';
import { VisionLanguageAlign } from './heads/vision-language-align.js';
import { MaskHeadModules } from './heads/mask-features.js';
import { GEOMETRY_INPUTS, levelGeometry, pixelKeepMask, type LevelGeometry } from './feature-geometry.js';
import { keepMaskInput } from '../engine/graph-inputs.js';
import { SENTENCE_KEEP_INPUT, sentenceKeepMask } from './sentence-buckets.js';
import { INFERENCE_CHUNK_ROWS } from './row-chunks.js';
import { stageEnd } from '../engine/graph-inputs.js';
import { maskFeatureStride, pyramidLevels, validateConfig, type ApeConfig } from './config.js';
import { ClipTextEncoder } from '../text/clip-text-transformer.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import {
  PromptEmbeddingCache,
  poolPromptTokens,
  type EncodeProgress,
  type PromptRowEncoder,
  type PromptTextEncoder,
} from '../text/prompt-embeddings.js';
import { promptEntries, type PromptEntry } from '../text/prompts.js';
import { required } from '../util/checked.js';

/** A batch of images as the network takes them. */
export interface ModelBatch {
  /** [B, H, W, 3] RGB values 0..255 (float32), each image at the top-left, any padding after it. */
  images: tf.Tensor4D;
  /** Valid [height, width] of each image inside the padded input. */
  sizes: [number, number][];
}

/** The prompts of one forward pass, shared by every image of the batch. */
export interface PromptInput {
  vocabulary?: string[];
  sentences?: string[];
  /**
   * Extra sentence embeddings [N, D] appended after `sentences` (e.g. a bank of earlier sentence
   * embeddings used as negatives); they are fused like sentences.
   */
  extraSentenceEmbeddings?: tf.Tensor2D | null;
  /**
   * The last this many of `sentences` only fill a sentence-count bucket (sentence-buckets.ts): the
   * fusion masks them out, so that they change nothing else; their own logit columns mean nothing
   * (callers drop them). Sentence fusion without extra embeddings only. Default 0.
   */
  paddedSentences?: number;
}

/**
 * 'sentence' (APE): vocabulary prompts stay out of the fusion (one zero token stands in for them),
 * each sentence enters as one vector. 'word' (GLIP / Grounding DINO style baseline): every token
 * of every prompt goes through the fusion, and prompts are pooled from their fused tokens.
 */
export type FusionMode = 'sentence' | 'word';

export interface ForwardOptions {
  training?: boolean;
  /** Needed when training with dropout / drop path. */
  rng?: Rng;
  fusion?: FusionMode;
  /** Which decoder layers get heads: all (training) or the last only (inference, the default when not training). */
  layers?: 'all' | 'last';
  /** Which of those layers get mask logits (default: the last only). */
  masks?: 'all' | 'last';
  /**
   * Inference only: token-wise work over the encoder's tokens (FFN, projections, norms, fusion
   * projections, proposal heads) runs this many tokens at a time, so that large inputs fit the
   * wasm heap; the outputs do not depend on it. Default INFERENCE_CHUNK_ROWS; Infinity turns it
   * off. Training never chunks.
   */
  chunkRows?: number;
  /** Filled with the milliseconds spent in each phase of this forward (added to what is there). */
  timings?: ForwardTimings;
  /**
   * false: the classifier scores the sentences only, and the vocabulary is neither encoded nor
   * scored; the last layer's hidden queries come back (LayerOutput.hidden) so that the caller can
   * score vocabulary chunks itself (VisionLanguageAlign.queryKeys / scorePrompts). Vocabulary
   * prompts never enter the fusion, so nothing else changes. Default true.
   */
  vocabularyLogits?: boolean;
  /** Also return the last layer's hidden queries (LayerOutput.hidden). */
  hidden?: boolean;
  /** Also score every pixel embedding against the prompts with the last classifier (for the pixel-class training loss). */
  pixelLogits?: boolean;
  /** Training a trainable text tower: also return its pooled prompt vectors (for the prompt-separation loss). */
  textEmbeddings?: boolean;
  /**
   * Training only: contrastive denoising queries (DINO's CDN) run through the decoder before the
   * proposal queries; their per-layer outputs come back in `denoising`, apart from `layers`.
   */
  denoising?: DenoisingInput | null;
  /**
   * Called with the mask level's intermediate maps (diagnostics: feature probes); they are
   * disposed after the call, so read what you need inside it.
   */
  inspect?: (maps: { backbone: tf.Tensor4D; memory: tf.Tensor4D; pixels: tf.Tensor4D }) => void;
}

/**
 * Where a forward pass spends its time: backbone (normalisation, ViT, pyramid, neck), prompts
 * (prompt vectors and the fusion's text input), encoder (fusion + encoder layers, proposals and
 * their selection), decoder (query set-up and decoder layers with box refinement), heads
 * (classifier logits, pixel embedding, mask logits). The engine computes synchronously, so each
 * phase's time is its compute.
 */
export interface ForwardTimings {
  backbone?: number;
  prompts?: number;
  encoder?: number;
  decoder?: number;
  heads?: number;
}

/** The outputs of one decoder layer. */
export interface LayerOutput {
  /** Decoder layer index. */
  index: number;
  /** [B, Q, P] region-prompt logits (sigmoid gives the score); the sentences' only with `vocabularyLogits: false`. */
  logits: tf.Tensor3D;
  /** [B, Q, D] the layer's hidden queries (the last layer's, when asked for). */
  hidden?: tf.Tensor3D;
  /** [B, Q, 4] boxes (cx, cy, w, h) in [0, 1] of each image's valid region. */
  boxes: tf.Tensor3D;
  /** [B, Q, h, w] mask logits over the padded input at `maskStride`, or null for layers without masks. */
  masks: tf.Tensor4D | null;
}

/** Everything a loss or a post-processor needs from one forward pass. */
export interface ApeRawOutput {
  /** Per decoder layer (all, or the last only), in order. */
  layers: LayerOutput[];
  /** Two-stage proposals of the encoder (class-agnostic objectness + boxes per token) and the picks. */
  encoder: EncoderProposals;
  /** Per decoder layer, the reference boxes it started from (host, [B, Q, 4] cxcywh). */
  references: Float32Array[];
  /** The prompts in column order (extra sentence embeddings appear as kind 'sentence' with text ''). */
  prompts: PromptEntry[];
  inputSize: [number, number];
  sizes: [number, number][];
  maskStride: number;
  /**
   * The prompt vectors the classifier compared queries with: [P, D] when shared by the batch
   * (vocabulary only), else [B, P, D] (fused sentences / word tokens are per image); [0, D] when
   * nothing was scored (`vocabularyLogits: false` without sentences).
   */
  promptVectors: tf.Tensor2D | tf.Tensor3D;
  /**
   * With `textEmbeddings`, training a trainable text tower with sentence-level prompts: the
   * tower's pooled vectors of the prompt texts (vocabulary, then sentences; not the extra
   * embeddings), [P, Dl], in the tape.
   */
  textEmbeddings: { vectors: tf.Tensor2D; texts: string[] } | null;
  /** With `pixelLogits`: [B, h*w, P] logits of the mask head's pixel embeddings on its h x w grid. */
  pixelLogits: { logits: tf.Tensor3D; grid: [number, number] } | null;
  /** With `denoising`: the denoising queries' outputs per decoder layer (as `layers`), else null. */
  denoising: LayerOutput[] | null;
  /** Token grid of each encoder level. */
  spatialShapes: [number, number][];
  levelStart: number[];
  dispose(): void;
}

/** The visual side of one forward: backbone pyramid (by level name), per-level features after the neck, their geometry. */
interface VisualFeatures {
  features: Record<string, tf.Tensor4D>;
  levelFeats: tf.Tensor4D[];
  shapes: [number, number][];
  geometry: LevelGeometry;
}

/** The prompt side of one forward, before the fusion. */
interface PromptSide {
  /** Images in the batch. */
  b: number;
  vocabEmb: tf.Tensor2D | null;
  /** Sentences, then the extra sentence embeddings. */
  sentenceEmb: tf.Tensor2D | null;
  /** 'word' fusion: where each prompt's tokens start in the token rows, and how many. */
  wordPool: { offsets: Int32Array; lengths: Int32Array } | null;
  encoderText: EncoderText | null;
  textEmbeddings: ApeRawOutput['textEmbeddings'];
}

/** Adds the milliseconds since the previous call (or creation) to `timings[phase]`; nothing without timings. */
function phaseTimer(timings: ForwardTimings | undefined): (phase: keyof ForwardTimings) => void {
  let mark = performance.now();
  return (phase) => {
    if (!timings) return;
    const now = performance.now();
    timings[phase] = (timings[phase] ?? 0) + (now - mark);
    mark = now;
  };
}

/**
 * Which parts of the network get real parameters: 'all'; 'prompts': the text tower and the last
 * decoder layer's classifier (what predict needs around a network forward that runs elsewhere, as
 * ONNX graphs: encoding prompts and scoring the vocabulary against the hidden queries);
 * 'classifier': that classifier alone, where the text tower runs elsewhere too (its ONNX export),
 * so the network encodes no prompt on TF.js (as after releaseTextTower); or 'detector':
 * everything but the text tower (what a recording of the forward for the ONNX export needs: it
 * takes prompt vectors as inputs; the released tower is 90% of ape-ti's weights). Every other
 * parameter is an empty placeholder (nn/module.ts), so the parts left out take no memory.
 */
export type NetworkParts = 'all' | 'prompts' | 'classifier' | 'detector';

/** The names of the text tower's parameters in the network (and its checkpoint) begin with this. */
export const TEXT_TOWER_PREFIX = 'model_language.net.';

/** Holder that gives the text tower its released prefix (TEXT_TOWER_PREFIX). */
class LanguageModel extends Module {
  readonly net: ClipTextEncoder;
  constructor(encoder: ClipTextEncoder) {
    super();
    this.net = this.child('net', encoder);
  }
}

/**
 * The APE network (APE-D's DeformableDETRSegmVL with its text tower): image + prompts -> per-layer
 * logits, boxes and masks. Parameter names are the released ones with `model_vision.` stripped.
 */
export class ApeNetwork extends Module {
  readonly backbone: ApeBackbone;
  readonly neck: ChannelMapper | null;
  readonly transformer: DeformableTransformer;
  readonly classEmbed: VisionLanguageAlign[];
  readonly proposalClass: Linear;
  readonly bboxEmbed: Mlp[];
  readonly maskHead: MaskHeadModules;
  readonly namePromptFusionFeature: tf.Variable;
  readonly language: LanguageModel;
  readonly levelNames: string[];
  readonly levelStrides: number[];
  readonly promptCache: PromptEmbeddingCache;
  private cacheFingerprint = '';
  /** Why the text tower's TF.js weights are gone (releaseTextTower), or null while they are loaded. */
  private textReleased: string | null = null;

  constructor(
    readonly config: ApeConfig,
    readonly tokenizer: TextTokenizer,
    seed = 0,
    readonly parts: NetworkParts = 'all',
  ) {
    super();
    validateConfig(config);
    if (tokenizer.vocabSize !== config.text.encoder.vocabSize) {
      throw new Error(
        `ApeNetwork: tokenizer has ${tokenizer.vocabSize} ids but text.encoder.vocabSize is ${config.text.encoder.vocabSize}`,
      );
    }
    if (tokenizer.contextLength !== config.text.encoder.contextLength) {
      throw new Error(
        `ApeNetwork: tokenizer context ${tokenizer.contextLength} differs from text.encoder.contextLength ${config.text.encoder.contextLength}`,
      );
    }
    const rng = new Rng(seed);
    const t = config.transformer;
    const e = t.embedDim;
    const textDim = config.text.encoder.embedDim;
    const levels = pyramidLevels(config);
    this.levelNames = levels.names;
    this.levelStrides = levels.strides;

    const placeholders = <T>(when: boolean, make: () => T): T =>
      when ? withParameterValues('placeholder', make) : make();
    const detector = <T>(make: () => T): T => placeholders(parts === 'prompts' || parts === 'classifier', make);
    const tower = <T>(make: () => T): T => placeholders(parts === 'classifier' || parts === 'detector', make);
    this.backbone = this.child(
      'backbone',
      detector(() => new ApeBackbone(config.backbone.vit, config.backbone.pyramid, rng, config.backbone.stem ?? null)),
    );
    const pyramidChannels = config.backbone.pyramid.outChannels;
    const neck = config.neck;
    this.neck = neck
      ? this.child(
          'neck',
          detector(() => new ChannelMapper(pyramidChannels, e, t.numLevels, neck.groups, rng)),
        )
      : null;
    const fusion = config.fusion ? { ...config.fusion, vDim: e, lDim: textDim } : null;
    this.transformer = this.child(
      'transformer',
      detector(() => new DeformableTransformer(t, fusion, rng)),
    );

    // The last layer's classifier scores the vocabulary after the network: it is part of the prompt side.
    const classHeads: Module[] = Array.from({ length: t.decoderLayers }, (_, i) =>
      i === t.decoderLayers - 1
        ? new VisionLanguageAlign(e, textDim, rng)
        : detector(() => new VisionLanguageAlign(e, textDim, rng)),
    );
    this.proposalClass = detector(() => new Linear(e, 1, rng, { biasInit: init.constant(-Math.log(99)) }));
    classHeads.push(this.proposalClass);
    this.classEmbed = this.childList('class_embed', classHeads).slice(0, t.decoderLayers) as VisionLanguageAlign[];
    this.bboxEmbed = this.childList(
      'bbox_embed',
      Array.from({ length: t.decoderLayers + 1 }, () => detector(() => new Mlp(e, e, 4, 3, rng, { zeroLast: true }))),
    );

    this.maskHead = detector(() => new MaskHeadModules(pyramidChannels, e, config.maskHead.groups, rng));
    this.child('lateral_conv', this.maskHead.lateralConv);
    this.child('output_conv', this.maskHead.outputConv);
    this.child('mask_conv', this.maskHead.maskConv);
    this.child('mask_embed', this.maskHead.maskEmbed);
    this.namePromptFusionFeature = detector(() =>
      this.param('name_prompt_fusion_feature', [1, 1, textDim], init.zeros(), rng, false),
    );

    this.language = this.child(
      'model_language',
      tower(() => new LanguageModel(new ClipTextEncoder(config.text.encoder, rng))),
    );
    if (!config.text.trainable)
      for (const v of this.language.namedParameters().values()) (v as { trainable: boolean }).trainable = false;
    this.promptCache = new PromptEmbeddingCache(
      this.language.net,
      tokenizer,
      config.text.pooling,
      config.text.batchSize,
    );
    if (parts === 'classifier') {
      this.textReleased =
        "this network has no text tower (parts 'classifier'): its prompts come from the tower's ONNX export";
      this.promptCache.towerReleased(this.textReleased);
    }
    if (parts === 'detector')
      this.markTextReleased("the network was made from its detector alone (parts 'detector'); load the whole model");
  }

  get maskStride(): number {
    return required(maskFeatureStride(this.config), `the stride of maskHead.feature '${this.config.maskHead.feature}'`);
  }

  /**
   * One vector per prompt text. With `withGradient` (training a trainable text tower) the tower
   * runs inside the caller's gradient tape; otherwise results come from the embedding cache.
   */
  encodePrompts(texts: readonly string[], withGradient = false): tf.Tensor2D {
    if (texts.length === 0) return tf.zeros([0, this.config.text.encoder.embedDim]) as tf.Tensor2D;
    if (!withGradient) {
      this.refreshPromptCache();
      return this.promptCache.sentences(texts);
    }
    if (this.textReleased !== null)
      throw new Error(`ApeNetwork.encodePrompts: the text tower's TF.js weights were released (${this.textReleased})`);
    const size = this.config.text.batchSize;
    const parts: tf.Tensor2D[] = [];
    for (let start = 0; start < texts.length; start += size) {
      const out = this.language.net.forward(this.tokenizer.tokenize(texts.slice(start, start + size)), {
        pooling: this.config.text.pooling,
      });
      out.attentionMask.dispose();
      parts.push(out.embeddings);
    }
    if (parts.length === 1) return parts[0]!;
    const joined = tf.concat(parts, 0);
    tf.dispose(parts);
    return joined;
  }

  /**
   * Puts the vectors of `texts` that neither the prompt cache nor its store has into the cache,
   * encoded by `encode` (the text tower on another engine) instead of TF.js; encodePrompts then
   * serves them from the cache.
   */
  async preparePrompts(texts: readonly string[], encode: PromptRowEncoder, onProgress?: EncodeProgress): Promise<void> {
    if (texts.length === 0) return;
    this.refreshPromptCache();
    await this.promptCache.prepare(texts, encode, onProgress);
  }

  /**
   * preparePrompts, the new texts encoded by `encode` from their text (another process's tower:
   * the page's server) rather than from their token ids.
   */
  async preparePromptTexts(
    texts: readonly string[],
    encode: PromptTextEncoder,
    onProgress?: EncodeProgress,
  ): Promise<void> {
    if (texts.length === 0) return;
    this.refreshPromptCache();
    await this.promptCache.prepareTexts(texts, encode, onProgress);
  }

  /** Whether the text tower's TF.js weights were released (releaseTextTower). */
  get textTowerReleased(): boolean {
    return this.textReleased !== null;
  }

  /**
   * Frees the text tower's TF.js weights (about 2.8 GB for the released models' EVA02-CLIP-E) once
   * another engine encodes prompts (`preparePrompts`): prompts not cached are then refused on the
   * TF.js path with `why`. Only for a frozen tower, whose vectors never change; the rest of the
   * network (and its ONNX export, which takes prompt vectors as inputs) does not use these weights.
   */
  releaseTextTower(why: string): void {
    if (this.config.text.trainable)
      throw new Error('ApeNetwork.releaseTextTower: the text tower is trainable (text.trainable); it must stay loaded');
    if (this.textReleased !== null) return;
    this.language.dispose();
    this.markTextReleased(why);
  }

  private markTextReleased(why: string): void {
    this.textReleased = why;
    this.promptCache.towerReleased(`the text tower's TF.js weights were released (${why})`);
  }

  /** Drops cached prompt embeddings when the text tower's weights changed since they were made. */
  protected refreshPromptCache(): void {
    // Without the tower's weights (released, or parts 'classifier') there is nothing that could change.
    if (!this.config.text.trainable || this.textReleased !== null) return;
    // Sum and sum of squares of every text parameter: any optimizer step changes them.
    const fingerprint = tf.tidy(() => {
      const sums = [...this.language.namedParameters().values()].flatMap((v) => [tf.sum(v), tf.sum(tf.square(v))]);
      return Array.from(tf.stack(sums).dataSync()).join(',');
    });
    if (fingerprint !== this.cacheFingerprint) {
      // The stored vectors are those of the weights the model was loaded with.
      if (this.cacheFingerprint !== '') this.promptCache.setStore(null);
      this.promptCache.clear();
      this.cacheFingerprint = fingerprint;
    }
  }

  /** Normalises, zeroes the padding: [B, H, W, 3] 0..255 -> network input (the backbone's). */
  normalize(batch: ModelBatch): tf.Tensor4D {
    const [b, h, w, c] = batch.images.shape;
    if (c !== 3) throw new Error(`ApeNetwork.forward: images must have 3 channels, got ${c}`);
    if (batch.sizes.length !== b) throw new Error(`ApeNetwork.forward: ${b} images but ${batch.sizes.length} sizes`);
    batch.sizes.forEach(([vh, vw], i) => {
      if (!(vh > 0 && vw > 0 && vh <= h && vw <= w))
        throw new Error(`ApeNetwork.forward: size ${vh}x${vw} of image ${i} does not fit the ${h}x${w} input`);
    });
    const { pixelMean, pixelStd } = this.config.input;
    return tf.tidy(() => {
      const keep = keepMaskInput(GEOMETRY_INPUTS.pixelKeep, pixelKeepMask(batch.sizes, [h, w]), [b, h, w, 1]);
      const normed = tf.div(tf.sub(batch.images, pixelMean), pixelStd) as tf.Tensor4D;
      return keep ? (tf.mul(normed, keep) as tf.Tensor4D) : normed;
    });
  }

  /**
   * One forward pass in its stages: backbone (and neck), prompts, the deformable transformer
   * (fusion, encoder, proposals, decoder), prompt vectors, pixel embedding, heads.
   */
  forward(batch: ModelBatch, prompts: PromptInput, options: ForwardOptions = {}): ApeRawOutput {
    if (this.parts === 'prompts')
      throw new Error(
        `ApeNetwork.forward: this network has its prompt side only (parts '${this.parts}'); load the whole model`,
      );
    const training = options.training ?? false;
    const mode = options.fusion ?? 'sentence';
    const entries = this.checkInputs(batch, prompts, mode);
    const chunkRows = training ? Infinity : (options.chunkRows ?? INFERENCE_CHUNK_ROWS);
    const lap = phaseTimer(options.timings);

    const visual = this.visualFeatures(batch, training, options.rng);
    lap('backbone');
    stageEnd('backbone');
    const vocabularyLogits = options.vocabularyLogits ?? true;
    if (!vocabularyLogits && mode !== 'sentence')
      throw new Error('ApeNetwork.forward: vocabularyLogits false needs sentence fusion');
    const text = this.promptSide(
      vocabularyLogits ? prompts : { ...prompts, vocabulary: [] },
      batch.images.shape[0],
      mode,
      training && this.config.text.trainable,
      options.textEmbeddings ?? false,
    );
    lap('prompts');
    const heads = { bboxEmbed: this.bboxEmbed, proposalClass: this.proposalClass };
    const denoising = options.denoising ? this.denoisingQueries(options.denoising, text) : null;
    const out = this.transformer.forward(visual.levelFeats, visual.geometry, text.encoderText, heads, {
      training,
      rng: options.rng,
      chunkRows,
      onPhase: lap,
      denoising,
    });
    if (denoising) tf.dispose([denoising.boxes, denoising.content, denoising.attentionBias]);
    const dn = options.denoising ? this.splitDenoising(out, options.denoising.count) : null;
    text.encoderText?.tokens.dispose();
    text.encoderText?.mask?.dispose();
    if (this.neck) tf.dispose(visual.levelFeats);

    const promptVectors = this.promptVectors(text, out.text, mode);
    for (const t of [text.vocabEmb, text.sentenceEmb, out.text]) t?.dispose();
    const pixels = this.pixelEmbedding(visual, out.memory, options.inspect);
    for (const f of Object.values(visual.features)) f.dispose();
    out.memory.dispose();
    const which = { layers: options.layers ?? (training ? 'all' : 'last'), masks: options.masks ?? 'last' } as const;
    const { layers, pixelLogits } = this.heads(out, promptVectors, pixels, {
      ...which,
      pixelLogits: options.pixelLogits ?? false,
      hidden: (options.hidden ?? false) || !vocabularyLogits,
    });
    const denoisingLayers = dn
      ? this.heads(dn, promptVectors, pixels, { ...which, pixelLogits: false, hidden: false }).layers
      : null;
    pixels.dispose();
    lap('heads');

    const encoder = out.encoder;
    const textEmbeddings = text.textEmbeddings;
    const [, hIn, wIn] = batch.images.shape;
    return {
      layers,
      encoder,
      references: out.references,
      prompts: entries,
      promptVectors,
      textEmbeddings,
      pixelLogits,
      denoising: denoisingLayers,
      inputSize: [hIn, wIn],
      sizes: batch.sizes.map(([h, w]) => [h, w]),
      maskStride: this.maskStride,
      spatialShapes: visual.shapes,
      levelStart: visual.geometry.levelStart,
      dispose() {
        for (const l of [...layers, ...(denoisingLayers ?? [])])
          tf.dispose([l.logits, l.boxes, ...(l.masks ? [l.masks] : []), ...(l.hidden ? [l.hidden] : [])]);
        tf.dispose([
          encoder.logits,
          encoder.boxes,
          promptVectors,
          ...(textEmbeddings ? [textEmbeddings.vectors] : []),
          ...(pixelLogits ? [pixelLogits.logits] : []),
        ]);
      },
    };
  }

  /** The denoising queries' tensors: their label content from the prompt embeddings in column order (denoising-queries.ts). */
  private denoisingQueries(input: DenoisingInput, text: PromptSide): DenoisingQueries {
    if (text.wordPool) throw new Error('ApeNetwork.forward: denoising queries need sentence-level prompts');
    const parts = [text.vocabEmb, text.sentenceEmb].filter((t): t is tf.Tensor2D => t !== null);
    const prompts = parts.length === 1 ? parts[0]! : (tf.concat(parts, 0) as tf.Tensor2D);
    const queries = denoisingQueries(
      input,
      prompts,
      this.classEmbed[0]!.projection,
      text.b,
      this.config.transformer.proposals.numQueries,
    );
    if (parts.length > 1) prompts.dispose();
    return queries;
  }

  /**
   * Takes the first `d` queries (the denoising ones) out of the decoder's output, in place: `out`
   * keeps the proposal queries; the returned hidden states and boxes are the denoising queries'.
   */
  private splitDenoising(out: TransformerOutput, d: number): Pick<TransformerOutput, 'hidden' | 'boxes'> {
    const hidden: tf.Tensor3D[] = [];
    const boxes: tf.Tensor3D[] = [];
    out.hidden.forEach((h, i) => {
      [hidden[i], out.hidden[i]] = splitQueries(h, d);
      [boxes[i], out.boxes[i]] = splitQueries(out.boxes[i]!, d);
    });
    const b = out.memory.shape[0];
    out.references = out.references.map((r) => splitQueryBoxes(r, b, d)[1]);
    return { hidden, boxes };
  }

  /** Checks the input size and the prompts; the prompts in column order (extra embeddings as sentences with text ''). */
  private checkInputs(batch: ModelBatch, prompts: PromptInput, mode: FusionMode): PromptEntry[] {
    const [, hIn, wIn] = batch.images.shape;
    const coarsest = this.levelStrides[this.levelStrides.length - 1]!;
    if (hIn % coarsest !== 0 || wIn % coarsest !== 0)
      throw new Error(`ApeNetwork.forward: input ${hIn}x${wIn} is not a multiple of the coarsest stride ${coarsest}`);
    const entries = promptEntries(prompts);
    const extra = prompts.extraSentenceEmbeddings ?? null;
    const textDim = this.config.text.encoder.embedDim;
    if (extra && (extra.rank !== 2 || extra.shape[1] !== textDim))
      throw new Error(
        `ApeNetwork.forward: extraSentenceEmbeddings must be [N, ${textDim}], got [${extra.shape.join(', ')}]`,
      );
    if (extra && mode === 'word') throw new Error('ApeNetwork.forward: extraSentenceEmbeddings need sentence fusion');
    const padded = prompts.paddedSentences ?? 0;
    const sentenceCount = prompts.sentences?.length ?? 0;
    if (!(Number.isInteger(padded) && padded >= 0 && padded < Math.max(sentenceCount, 1)))
      throw new Error(
        `ApeNetwork.forward: paddedSentences must be a whole number below the ${sentenceCount} sentences, got ${padded}`,
      );
    if (padded > 0 && (mode !== 'sentence' || extra))
      throw new Error('ApeNetwork.forward: paddedSentences need sentence fusion without extraSentenceEmbeddings');
    const extraCount = extra ? extra.shape[0] : 0;
    for (let i = 0; i < extraCount; i++) entries.push({ text: '', kind: 'sentence', index: entries.length });
    if (entries.length === 0)
      throw new Error('ApeNetwork.forward: no prompts (give at least one vocabulary entry or sentence)');
    return entries;
  }

  /** Backbone pyramid, the neck's per-level features and the token geometry of the levels. */
  private visualFeatures(batch: ModelBatch, training: boolean, rng: Rng | undefined): VisualFeatures {
    const [, hIn, wIn] = batch.images.shape;
    const images = this.normalize(batch);
    const features = this.backbone.forward(images, { training, rng });
    images.dispose();
    const levelFeats = this.levelNames.map((name, i) => {
      const f = features[name]!;
      return this.neck ? this.neck.convs[i]!.forward(f) : f;
    });
    const shapes = levelFeats.map((f) => [f.shape[1], f.shape[2]] as [number, number]);
    return { features, levelFeats, shapes, geometry: levelGeometry(shapes, batch.sizes, [hIn, wIn]) };
  }

  /** Prompt embeddings and the text side of the fusion. */
  private promptSide(
    prompts: PromptInput,
    b: number,
    mode: FusionMode,
    withGradient: boolean,
    wantTextEmbeddings: boolean,
  ): PromptSide {
    const vocabulary = prompts.vocabulary ?? [];
    const sentences = prompts.sentences ?? [];
    const extra = prompts.extraSentenceEmbeddings ?? null;
    const side: PromptSide = {
      b,
      vocabEmb: null,
      sentenceEmb: null,
      wordPool: null,
      encoderText: null,
      textEmbeddings: null,
    };
    if (mode === 'word') {
      const tokens = this.promptTokens([...vocabulary, ...sentences], withGradient);
      side.wordPool = { offsets: tokens.offsets, lengths: tokens.lengths };
      side.encoderText = {
        tokens: tf.tidy(() => tf.tile(tf.expandDims(tokens.tokens, 0), [b, 1, 1]) as tf.Tensor3D),
        keep: true,
      };
      tokens.tokens.dispose();
      return side;
    }
    const vocabEmb = vocabulary.length > 0 ? this.encodePrompts(vocabulary, withGradient) : null;
    const own = sentences.length > 0 ? this.encodePrompts(sentences, withGradient) : null;
    if (withGradient && wantTextEmbeddings) {
      const parts = [vocabEmb, own].filter((t): t is tf.Tensor2D => t !== null);
      side.textEmbeddings = {
        vectors: parts.length === 1 ? tf.clone(parts[0]!) : (tf.concat(parts, 0) as tf.Tensor2D),
        texts: [...vocabulary, ...sentences],
      };
    }
    const sentenceEmb =
      own && extra ? (tf.concat([own, extra], 0) as tf.Tensor2D) : (own ?? (extra ? tf.clone(extra) : null));
    if (own && extra) own.dispose();
    if (this.config.fusion) {
      side.encoderText = sentenceEmb
        ? {
            tokens: tf.tidy(() => tf.tile(tf.expandDims(sentenceEmb, 0), [b, 1, 1]) as tf.Tensor3D),
            keep: true,
            mask: keepMaskInput(
              SENTENCE_KEEP_INPUT,
              sentenceKeepMask(sentenceEmb.shape[0] - (prompts.paddedSentences ?? 0), sentenceEmb.shape[0]),
              [sentenceEmb.shape[0]],
            ),
          }
        : { tokens: tf.tidy(() => tf.tile(this.namePromptFusionFeature, [b, 1, 1]) as tf.Tensor3D), keep: false };
    }
    side.vocabEmb = vocabEmb;
    side.sentenceEmb = sentenceEmb;
    return side;
  }

  /** Prompt vectors the classifier compares queries with: [P, D] shared, or [B, P, D] per image. */
  private promptVectors(
    text: PromptSide,
    fusedText: tf.Tensor3D | null | undefined,
    mode: FusionMode,
  ): tf.Tensor2D | tf.Tensor3D {
    const { b, vocabEmb, sentenceEmb, wordPool } = text;
    if (mode === 'sentence' && !vocabEmb && !sentenceEmb)
      return tf.zeros([0, this.config.text.encoder.embedDim]) as tf.Tensor2D;
    return tf.tidy((): tf.Tensor2D | tf.Tensor3D => {
      if (mode === 'word') {
        const pool = required(wordPool, 'the word pool of the prompts');
        const tokens = required(fusedText, 'the fused text tokens');
        return poolPromptTokens(tokens, pool.offsets, pool.lengths, this.config.text.pooling);
      }
      if (!sentenceEmb) return tf.clone(required(vocabEmb, 'the vocabulary embeddings'));
      const fused = this.config.fusion
        ? required(fusedText, 'the fused text tokens')
        : (tf.tile(tf.expandDims(sentenceEmb, 0), [b, 1, 1]) as tf.Tensor3D);
      if (!vocabEmb) return tf.clone(fused);
      return tf.concat([tf.tile(tf.expandDims(vocabEmb, 0), [b, 1, 1]), fused], 1) as tf.Tensor3D;
    });
  }

  /** Pixel embedding from the mask level of the backbone and the encoder memory. */
  private pixelEmbedding(visual: VisualFeatures, memory: tf.Tensor3D, inspect: ForwardOptions['inspect']): tf.Tensor4D {
    const level = this.config.maskHead.encodeLevel;
    const e = this.config.transformer.embedDim;
    return tf.tidy(() => {
      const b = memory.shape[0];
      const [h, w] = visual.shapes[level]!;
      const start = visual.geometry.levelStart[level]!;
      const memLevel = tf.reshape(tf.slice(memory, [0, start, 0], [b, h * w, e]), [b, h, w, e]) as tf.Tensor4D;
      const backbone = visual.features[this.config.maskHead.feature]!;
      const embedded = this.maskHead.pixelEmbedding(backbone, memLevel);
      inspect?.({ backbone, memory: memLevel, pixels: embedded });
      return embedded;
    });
  }

  /** Classifier logits, boxes and mask logits of the chosen decoder layers (their hidden states are disposed), and pixel logits if asked. */
  private heads(
    out: Pick<TransformerOutput, 'hidden' | 'boxes'>,
    promptVectors: tf.Tensor2D | tf.Tensor3D,
    pixels: tf.Tensor4D,
    which: { layers: 'all' | 'last'; masks: 'all' | 'last'; pixelLogits: boolean; hidden: boolean },
  ): Pick<ApeRawOutput, 'layers' | 'pixelLogits'> {
    const numLayers = out.hidden.length;
    const scored = promptVectors.shape[promptVectors.rank - 2]! > 0;
    const layers: LayerOutput[] = [];
    out.hidden.forEach((h, i) => {
      const last = i === numLayers - 1;
      if (which.layers === 'all' || last) {
        const [b, q] = h.shape;
        layers.push({
          index: i,
          logits: scored ? this.classEmbed[i]!.forward(h, promptVectors) : tf.zeros([b, q, 0]),
          boxes: out.boxes[i]!,
          masks: which.masks === 'all' || last ? this.maskHead.maskLogits(h, pixels) : null,
          ...(last && which.hidden ? { hidden: h } : {}),
        });
      } else {
        out.boxes[i]!.dispose();
      }
      if (!(last && which.hidden)) h.dispose();
    });
    let pixelLogits: ApeRawOutput['pixelLogits'] = null;
    if (which.pixelLogits) {
      if (!scored) throw new Error('ApeNetwork.forward: pixelLogits need scored prompts');
      const [b, ph, pw, pe] = pixels.shape;
      const flat = tf.reshape(pixels, [b, ph * pw, pe]) as tf.Tensor3D;
      pixelLogits = { logits: this.classEmbed[numLayers - 1]!.forward(flat, promptVectors), grid: [ph, pw] };
      flat.dispose();
    }
    return { layers, pixelLogits };
  }

  /** Token rows of every prompt (cached, or through the tower with gradient). */
  private promptTokens(texts: string[], withGradient: boolean) {
    if (!withGradient) {
      this.refreshPromptCache();
      return this.promptCache.tokens(texts);
    }
    if (this.textReleased !== null)
      throw new Error(`ApeNetwork.forward: the text tower's TF.js weights were released (${this.textReleased})`);
    const out = this.language.net.forward(this.tokenizer.tokenize(texts), {
      pooling: this.config.text.pooling,
      returnHidden: true,
    });
    const hidden = required(out.lastHiddenState, "the text tower's hidden states");
    const length = hidden.shape[1];
    const lengths = Int32Array.from(out.endTokenIdx, (e) => e + 1);
    const offsets = new Int32Array(texts.length);
    const rows: number[] = [];
    let total = 0;
    lengths.forEach((n, i) => {
      offsets[i] = total;
      total += n;
      for (let j = 0; j < n; j++) rows.push(i * length + j);
    });
    const tokens = tf.tidy(
      () => tf.gather(tf.reshape(hidden, [-1, hidden.shape[2]]), tf.tensor1d(rows, 'int32')) as tf.Tensor2D,
    );
    tf.dispose([out.embeddings, hidden, out.attentionMask]);
    return { tokens, offsets, lengths };
  }
}
