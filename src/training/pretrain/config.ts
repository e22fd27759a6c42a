import { checkedMerge, showValue } from '../../util/checked-merge.js';
import { ConfigError, parseTrainConfig, readConfigJson, type TrainConfig } from '../config.js';

/** The pretraining stage's own settings (the `pretrain` section of its config). */
export interface PretrainSettings {
  /** Pyramid levels the dense segmentation loss reads (strides 4-8: `p2` exists with pyramid.maskOnlyScales [4]). */
  levels: string[];
  /** The level whose features are pooled over each object for the object-name loss. */
  objectLevel: string;
  segmentationWeight: number;
  objectWeight: number;
  /**
   * Naming referred objects among their images' phrases (grounding sets then join the draws;
   * 0 = off, and grounding sets only feed the tokenizer).
   */
  phraseWeight: number;
  /** Softmax temperature of the cosine logits (CLIP's initial 0.07). */
  temperature: number;
  /** Parameter-name prefixes written to the weights file a detector run starts from (`initFrom`). */
  export: string[];
  /** A first stage on object crops that trains the conv stem and the text tower (null = none). */
  stemCrops: StemCropSettings | null;
  /**
   * Share of full-image steps run without the conv stem's additions (drawn per step from the
   * seed): the stem meets the losses through its shortcut, so without this the ViT pyramid gets
   * little reason to learn shape (docs/training.md, session 13's path-wise probe).
   */
  stemDropout: number;
}

/**
 * The stem-crop stage (`pretrain.stemCrops`): `steps` steps before the full-image ones, each
 * naming `batchSize` thing objects from fixed-size crops centred on their boxes, at the scale the
 * full-image steps show them (with the config's flips and scale jitter), through the conv stem's
 * stages and their projections into the pyramid, against the text tower's category names.
 */
export interface StemCropSettings {
  steps: number;
  /** Crops per step. */
  batchSize: number;
  /** Side of the square crops in pixels (a multiple of the stem's largest stride). */
  cropSize: number;
  /**
   * Largest offset (pixels, each axis, drawn per crop) of the crop's centre from the box's: a
   * full image shows objects at every phase of the stem's stride grid, a centred crop at one.
   */
  shift: number;
  /** Peak learning rate of the stage (null = optimizer.lr); warmup then the config's decay over `steps`. */
  lr: number | null;
  warmupSteps: number;
  /** Pyramid levels fed by a stem stage whose pooled features name the crops (each named on its own). */
  levels: string[];
}

export const DEFAULT_STEM_CROP_SETTINGS: StemCropSettings = {
  steps: 500,
  batchSize: 128,
  cropSize: 48,
  shift: 8,
  lr: null,
  warmupSteps: 20,
  levels: ['p3', 'p4'],
};

/** A pretraining config: a training config (same model, data, optimizer, schedule, checkpoints) plus `pretrain`. */
export type PretrainConfig = TrainConfig & { pretrain: PretrainSettings };

export const DEFAULT_PRETRAIN_SETTINGS: PretrainSettings = {
  levels: ['p3'],
  objectLevel: 'p3',
  segmentationWeight: 1,
  objectWeight: 1,
  phraseWeight: 0,
  temperature: 0.07,
  export: ['backbone.', 'model_language.'],
  stemCrops: null,
  stemDropout: 0,
};

export function loadPretrainConfig(file: string): PretrainConfig {
  return parsePretrainConfig(readConfigJson(file), file);
}

/**
 * Everything but `pretrain` is read as a training config (so a pretraining config names its model
 * exactly as the detector run it prepares for, and the tokenizer comes from the same datasets);
 * `eval` is the shape probe's folder and period.
 */
export function parsePretrainConfig(json: unknown, file: string): PretrainConfig {
  const fail = (field: string, why: string): never => {
    throw new ConfigError(`${file}: '${field}' ${why}`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('(top level)', 'must be an object');
  const { pretrain, ...rest } = json as Record<string, unknown>;
  const train = parseTrainConfig(rest, file);
  const settings = checkedMerge(
    DEFAULT_PRETRAIN_SETTINGS,
    pretrain ?? {},
    { missing: 'default', unknown: 'error' },
    (path, why) => fail(`pretrain.${path}`, why),
  );
  if (train.workers !== 1) fail('workers', `must be 1 for pretraining, got ${train.workers}`);
  if (train.accumulate !== 1) fail('accumulate', `must be 1 for pretraining, got ${train.accumulate}`);
  if (settings.levels.length === 0 || !settings.levels.every((l) => typeof l === 'string'))
    fail('pretrain.levels', `must list pyramid levels, got ${showValue(settings.levels)}`);
  for (const key of ['segmentationWeight', 'objectWeight', 'phraseWeight'] as const)
    if (!(settings[key] >= 0))
      fail(`pretrain.${key}`, `must be a non-negative number, got ${showValue(settings[key])}`);
  if (!(settings.stemDropout >= 0 && settings.stemDropout <= 1))
    fail('pretrain.stemDropout', `must be a number from 0 to 1, got ${showValue(settings.stemDropout)}`);
  if (!(settings.temperature > 0))
    fail('pretrain.temperature', `must be positive, got ${showValue(settings.temperature)}`);
  if (!train.datasets.some((d) => d.type === 'detection' || d.type === 'semantic'))
    fail('datasets', 'must include a detection or semantic set (the pretraining targets)');
  if (settings.stemCrops !== null) {
    settings.stemCrops = parseStemCrops(settings.stemCrops, fail);
    if (!train.datasets.some((d) => d.type === 'detection'))
      fail('pretrain.stemCrops', 'needs a detection set in datasets (its thing objects are cropped)');
  }
  return { ...train, pretrain: settings };
}

function parseStemCrops(value: unknown, fail: (field: string, why: string) => never): StemCropSettings {
  const s = checkedMerge(DEFAULT_STEM_CROP_SETTINGS, value, { missing: 'default', unknown: 'error' }, (path, why) =>
    fail(path === '' ? 'pretrain.stemCrops' : `pretrain.stemCrops.${path}`, why),
  );
  for (const key of ['steps', 'batchSize', 'cropSize'] as const)
    if (!(Number.isInteger(s[key]) && s[key] > 0))
      fail(`pretrain.stemCrops.${key}`, `must be a positive integer, got ${showValue(s[key])}`);
  for (const key of ['warmupSteps', 'shift'] as const)
    if (!(Number.isInteger(s[key]) && s[key] >= 0))
      fail(`pretrain.stemCrops.${key}`, `must be a non-negative integer, got ${showValue(s[key])}`);
  if (2 * s.shift >= s.cropSize)
    fail('pretrain.stemCrops.shift', `must be less than half the crop size ${s.cropSize}, got ${s.shift}`);
  if (s.lr !== null && !(s.lr > 0)) fail('pretrain.stemCrops.lr', `must be positive or null, got ${showValue(s.lr)}`);
  if (s.levels.length === 0 || !s.levels.every((l) => typeof l === 'string'))
    fail('pretrain.stemCrops.levels', `must list pyramid levels, got ${showValue(s.levels)}`);
  return s;
}
