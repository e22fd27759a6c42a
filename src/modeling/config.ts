import { apeDVitConfig, apeTiVitConfig, swigluHidden, type Eva02VitConfig } from './backbone/eva02-vit.js';
import { apePyramidConfig, type SimpleFeaturePyramidConfig } from './backbone/simple-feature-pyramid.js';
import type { ConvStemConfig } from './backbone/conv-stem.js';
import {
  eva02ClipBigETextConfig,
  tinyTextConfig,
  type ClipTextConfig,
  type TextPooling,
} from '../text/clip-text-transformer.js';
import type { BiAttentionConfig } from './fusion/bi-attention.js';
import type { DeformableTransformerConfig } from './deformable/transformer.js';

export type ApePresetName = 'tiny' | 'ape-ti' | 'ape-d';

export type TokenizerConfig =
  /** CLIP byte-pair encoding; the merges file (bpe_simple_vocab_16e6.txt.gz) is resolved at load time. */
  | { kind: 'clip-bpe'; vocabFile: string }
  /** The project's word-level tokenizer; its vocabulary travels with the model (tokenizer.json). */
  | { kind: 'word' };

export interface ApeTextConfig {
  encoder: ClipTextConfig;
  tokenizer: TokenizerConfig;
  /** Sentence embedding: 'eot' (released weights) or 'mean' (the paper). */
  pooling: TextPooling;
  /** The released models keep the text tower frozen; the tiny one trains it. */
  trainable: boolean;
  /** Prompts encoded per text-tower call. */
  batchSize: number;
}

export interface ApeInferenceConfig {
  /** Minimum sigmoid score of an instance (APE's test_score_thresh). */
  scoreThreshold: number;
  /** Class-wise NMS IoU threshold. */
  nmsThreshold: number;
  /** Instances kept per image. */
  topK: number;
  /** Temperature of the softmax over prompts in semantic accumulation. */
  semanticTemperature: number;
  /** Constant background channel added before the semantic argmax. */
  semanticBackground: number;
}

export interface ApeConfig {
  name: string;
  /** Images are resized so the long side is `size`, normalised, and zero-padded to size x size. */
  input: { size: number; pixelMean: [number, number, number]; pixelStd: [number, number, number] };
  /** `stem` (not in APE; absent or null = none) adds conv features to the pyramid's finer levels. */
  backbone: { vit: Eva02VitConfig; pyramid: SimpleFeaturePyramidConfig; stem?: ConvStemConfig | null };
  /** detrex ChannelMapper (1x1 conv + GroupNorm per level) to the hidden width, or null. */
  neck: { groups: number } | null;
  transformer: DeformableTransformerConfig;
  /** Vision-language fusion before every encoder layer (inner width, heads, gammas...); vDim/lDim are derived. */
  fusion: Omit<BiAttentionConfig, 'vDim' | 'lDim'> | null;
  text: ApeTextConfig;
  /** Pixel embedding: a backbone pyramid level plus the encoder memory of level `encodeLevel`. */
  maskHead: { feature: string; encodeLevel: number; groups: number };
  inference: ApeInferenceConfig;
}

const IMAGENET = {
  pixelMean: [123.675, 116.28, 103.53] as [number, number, number],
  pixelStd: [58.395, 57.12, 57.375] as [number, number, number],
};

const APE_INFERENCE: ApeInferenceConfig = {
  scoreThreshold: 0,
  nmsThreshold: 0.7,
  topK: 300,
  semanticTemperature: 0.06,
  semanticBackground: 0.1,
};

const APE_FUSION = {
  embedDim: 2048,
  numHeads: 8,
  dropout: 0.1,
  initValues: 1 / 6,
  stableSoftmax2d: true,
  clampMinForUnderflow: true,
  clampMaxForOverflow: true,
};

function releasedConfig(name: string, vit: Eva02VitConfig): ApeConfig {
  return {
    name,
    input: { size: 1024, ...IMAGENET },
    backbone: { vit, pyramid: apePyramidConfig(vit.embedDim, 256), stem: null },
    neck: { groups: 32 },
    transformer: {
      embedDim: 256,
      numHeads: 8,
      numLevels: 5,
      numPoints: 4,
      ffnDim: 2048,
      encoderLayers: 6,
      decoderLayers: 6,
      proposals: { mode: 'level-nms', numQueries: 900, preNmsTopk: 1000, nmsThreshold: 0.9 },
      proposalAmbiguous: 1,
    },
    fusion: { ...APE_FUSION },
    text: {
      encoder: eva02ClipBigETextConfig(),
      tokenizer: { kind: 'clip-bpe', vocabFile: 'bpe_simple_vocab_16e6.txt.gz' },
      pooling: 'eot',
      trainable: false,
      batchSize: 256,
    },
    maskHead: { feature: 'p2', encodeLevel: 0, groups: 32 },
    inference: { ...APE_INFERENCE },
  };
}

/** APE-D (EVA-02 ViT-L backbone) as released. */
export function apeDConfig(): ApeConfig {
  return releasedConfig('ape-d', apeDVitConfig());
}

/** APE-Ti (EVA-02 ViT-Ti backbone) as released. */
export function apeTiConfig(): ApeConfig {
  return releasedConfig('ape-ti', apeTiVitConfig());
}

/**
 * The CPU-trainable model: 256x256 input, ViT-Ti-width backbone (6 blocks) with a 3-level pyramid
 * (strides 8, 16, 32), hidden 128, 3 + 3 layers, 100 queries, a 2-layer word-level text tower.
 * The mask head works at stride 8 (the pyramid's finest level).
 */
export function tinyConfig(textVocabSize = 4096): ApeConfig {
  const vit: Eva02VitConfig = {
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
  return {
    name: 'tiny',
    input: { size: 256, ...IMAGENET },
    backbone: {
      vit,
      pyramid: {
        inChannels: 192,
        inStride: 16,
        outChannels: 128,
        scaleFactors: [2, 1, 0.5],
        maskOnlyScales: null,
        topBlock: false,
        layerNormEps: 1e-6,
      },
      stem: null,
    },
    neck: { groups: 32 },
    transformer: {
      embedDim: 128,
      numHeads: 4,
      numLevels: 3,
      numPoints: 4,
      ffnDim: 512,
      encoderLayers: 3,
      decoderLayers: 3,
      proposals: { mode: 'level-nms', numQueries: 100, preNmsTopk: 1000, nmsThreshold: 0.9 },
      proposalAmbiguous: 0,
    },
    fusion: { ...APE_FUSION, embedDim: 256, numHeads: 4, dropout: 0 },
    text: {
      encoder: tinyTextConfig(textVocabSize, 16, 128),
      tokenizer: { kind: 'word' },
      pooling: 'eot',
      trainable: true,
      batchSize: 512,
    },
    maskHead: { feature: 'p3', encodeLevel: 0, groups: 32 },
    inference: { ...APE_INFERENCE, topK: 100 },
  };
}

/** The settings of `backbone.stem` (ConvStemConfig). */
const STEM_SETTINGS: readonly string[] = ['channels', 'extraConvs'] satisfies (keyof ConvStemConfig)[];

/**
 * How a config read from outside (a model folder's config.json, a run's overrides) is checked
 * against a preset's shape (util/checked-merge): `neck` and `fusion` may be null; the tokenizer
 * is a union that validateConfig checks. Settings that are null in the presets (`backbone.stem`)
 * are optional: configs written before they existed load without them (absent or null = off).
 */
export const APE_CONFIG_SHAPE = { nullable: ['neck', 'fusion'], freeForm: ['text.tokenizer'] } as const;

export const APE_PRESETS: Record<ApePresetName, () => ApeConfig> = {
  tiny: () => tinyConfig(),
  'ape-ti': apeTiConfig,
  'ape-d': apeDConfig,
};

/** Pyramid outputs (names and strides) a config produces, in level order. */
export function pyramidLevels(config: ApeConfig): { names: string[]; strides: number[] } {
  const p = config.backbone.pyramid;
  const strides = p.scaleFactors.map((s) => p.inStride / s);
  if (p.topBlock) strides.push(strides[strides.length - 1]! * 2);
  return { names: strides.map((s) => `p${Math.log2(s)}`), strides };
}

/** Pyramid levels made for the mask head alone (pyramid.maskOnlyScales), names and strides. */
export function maskOnlyLevels(config: ApeConfig): { names: string[]; strides: number[] } {
  const p = config.backbone.pyramid;
  const strides = (p.maskOnlyScales ?? []).map((s) => p.inStride / s);
  return { names: strides.map((s) => `p${Math.log2(s)}`), strides };
}

/** The stride of the mask head's backbone feature (a pyramid level or a mask-only one), or null if it is neither. */
export function maskFeatureStride(config: ApeConfig): number | null {
  const levels = pyramidLevels(config);
  const extra = maskOnlyLevels(config);
  const i = [...levels.names, ...extra.names].indexOf(config.maskHead.feature);
  return i < 0 ? null : [...levels.strides, ...extra.strides][i]!;
}

/** Checks the pieces of a config fit together; throws naming the first field that does not. */
export function validateConfig(config: ApeConfig): void {
  const fail = (field: string, why: string) => {
    throw new Error(`ApeConfig '${config.name}': ${field} ${why}`);
  };
  const t = config.transformer;
  const { names, strides } = pyramidLevels(config);
  if (names.length !== t.numLevels)
    fail(
      'transformer.numLevels',
      `is ${t.numLevels} but the pyramid gives ${names.length} levels (${names.join(', ')})`,
    );
  if (t.embedDim % 2 !== 0) fail('transformer.embedDim', `must be even, got ${t.embedDim}`);
  if (t.embedDim % t.numHeads !== 0)
    fail('transformer.embedDim', `${t.embedDim} is not divisible by ${t.numHeads} heads`);
  if (!config.neck && config.backbone.pyramid.outChannels !== t.embedDim)
    fail(
      'neck',
      `is null but pyramid channels ${config.backbone.pyramid.outChannels} differ from the hidden width ${t.embedDim}`,
    );
  if (config.neck && t.embedDim % config.neck.groups !== 0)
    fail('neck.groups', `${config.neck.groups} does not divide ${t.embedDim}`);
  if (maskFeatureStride(config) === null)
    fail(
      'maskHead.feature',
      `'${config.maskHead.feature}' is not a pyramid level (${[...names, ...maskOnlyLevels(config).names].join(', ')})`,
    );
  if (config.maskHead.encodeLevel < 0 || config.maskHead.encodeLevel >= t.numLevels)
    fail('maskHead.encodeLevel', `must be a level index < ${t.numLevels}`);
  const size = config.input.size;
  const coarsest = strides[strides.length - 1]!;
  if (size % coarsest !== 0 && size % config.backbone.vit.patchSize !== 0)
    fail('input.size', `${size} is not a multiple of the patch size`);
  const tokens = strides.reduce((acc, s) => acc + Math.ceil(size / s) ** 2, 0);
  if (tokens < t.proposals.numQueries)
    fail(
      'transformer.proposals.numQueries',
      `${t.proposals.numQueries} exceeds the ${tokens} tokens of a ${size}x${size} input`,
    );
  if (config.fusion && config.fusion.embedDim % config.fusion.numHeads !== 0)
    fail('fusion.embedDim', `is not divisible by ${config.fusion.numHeads} heads`);
  if (config.text.encoder.contextLength < 2) fail('text.encoder.contextLength', 'must be at least 2');
  const tokenizer = (config.text.tokenizer ?? {}) as { kind?: unknown; vocabFile?: unknown };
  if (!(tokenizer.kind === 'word' || (tokenizer.kind === 'clip-bpe' && typeof tokenizer.vocabFile === 'string'))) {
    fail('text.tokenizer', "must be {kind: 'word'} or {kind: 'clip-bpe', vocabFile}");
  }
  const stem = config.backbone.stem;
  if (stem) {
    // The stem comes from a null preset setting, so no preset shape names its keys: a misspelt
    // one would silently build the plain stem.
    const unknown = Object.keys(stem).filter((k) => !STEM_SETTINGS.includes(k));
    if (unknown.length > 0)
      fail(
        'backbone.stem',
        `has unknown settings ${unknown.map((k) => `'${k}'`).join(', ')} (known: ${STEM_SETTINGS.join(', ')})`,
      );
    if (
      !Array.isArray(stem.channels) ||
      stem.channels.length === 0 ||
      !stem.channels.every((c) => Number.isInteger(c) && c > 0)
    ) {
      fail(
        'backbone.stem.channels',
        `must be a non-empty list of positive integers, got ${JSON.stringify(stem.channels)}`,
      );
    }
    if (stem.extraConvs !== undefined && !(Number.isInteger(stem.extraConvs) && stem.extraConvs >= 0))
      fail('backbone.stem.extraConvs', `must be a non-negative integer, got ${JSON.stringify(stem.extraConvs)}`);
    const stride = 2 ** stem.channels.length;
    if (!strides.includes(stride))
      fail(
        'backbone.stem.channels',
        `has ${stem.channels.length} stride-2 stages (stride ${stride}), which is not a pyramid stride (${strides.join(', ')})`,
      );
    if (size % stride !== 0) fail('input.size', `${size} is not a multiple of the conv stem's stride ${stride}`);
  }
}
