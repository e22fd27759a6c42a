import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { DatasetKind } from '../data/types.js';
import type { DatasetSpec } from '../data/open-dataset.js';
import type { LossSwitches } from '../data/sampler/loss-switches.js';
import { APE_PRESETS, type ApePresetName } from '../modeling/config.js';
import { checkedMerge, showValue, type MergeRules } from '../util/checked-merge.js';
import type { CheckpointFormat } from './checkpoint.js';
import type { LossWeights } from './criterion.js';
import type { DenoisingConfig } from './denoising.js';
import type { MatchCostWeights } from './assign/match-cost.js';
import type { PointSamplingOptions } from './losses/point-sampling.js';
import type { ScheduleSettings } from './optim/schedule.js';

/** One training dataset (see DatasetSpec); relative paths are resolved against the config's `root`. */
export type DatasetConfig = DatasetSpec;

export interface TrainConfig {
  /** Base folder of every relative path below, itself relative to the config file. */
  root: string;
  /** Run folder: checkpoints/, model/, log.jsonl. */
  output: string;
  seed: number;
  /** Optimizer steps of the whole run. */
  steps: number;
  /** Images per micro-batch and micro-batches per optimizer step. */
  batchSize: number;
  accumulate: number;
  /** Square training canvas (the model input size). */
  imageSize: number;
  /** Data-parallel worker threads (1 = in process; 2 uses both cores). */
  workers: number;
  /**
   * A training checkpoint a new run takes its weights and tokenizer from (null = fresh weights).
   * Parameters it lacks (modules the config adds) start from their initialisation; optimizer,
   * schedule and data order start anew. Ignored once the run has checkpoints of its own.
   */
  initFrom: string | null;
  model: {
    preset: ApePresetName;
    /** Deep overrides of the preset's config (e.g. {"transformer": {"decoderLayers": 2}}). */
    overrides?: Record<string, unknown>;
    /** Word-tokenizer size for presets with a word-level text tower. */
    textVocabSize: number;
  };
  optimizer: {
    lr: number;
    weightDecay: number;
    betas: [number, number];
    eps: number;
    /** Global gradient-norm clip (0 = off). */
    clipNorm: number;
    /** Learning-rate factors by parameter-name prefix (e.g. {"backbone.": 0.1}). */
    lrMultipliers: Record<string, number>;
  };
  schedule: ScheduleSettings & {
    /**
     * The length the schedule is drawn for (cosine length, fractional milestones); null = the
     * first session's `steps`. A run remembers its plan in its checkpoints, so raising `steps`
     * later extends the run without redrawing the schedule.
     */
    plannedSteps: number | null;
  };
  loss: {
    assignment: 'hungarian' | 'deta';
    weights: LossWeights;
    matchCost: MatchCostWeights;
    focalAlpha: number;
    focalGamma: number;
    maskLayers: 'last' | 'all';
    pointSampling: PointSamplingOptions | null;
    separationMargin: number;
    /** DINO's contrastive denoising queries (training only; null = off); missing fields take DEFAULT_DENOISING's. */
    denoising: DenoisingConfig | null;
  };
  negativeBank: {
    /** Sentence embeddings kept (0 = off). */
    size: number;
    /** Most of them appended to one sentence batch. */
    perBatch: number;
  };
  augment: {
    flipProbability: number;
    scaleRange: [number, number];
    crop: boolean;
    minSize: number;
  };
  data: {
    splitStuff: boolean;
    minComponentFraction: number;
    groundingNmsIou: number;
    maxPrompts: number;
    maxSegments: number;
    federatedSampleCats: number;
  };
  checkpoint: {
    every: number;
    keep: number;
    /** How the AdamW moments are stored: `full` (float32) or `compact` (8-bit codes, about half the file). */
    format: CheckpointFormat;
  };
  log: { every: number };
  /**
   * Synthetic-world folders to generate before training when they do not exist yet (so that one
   * command starts a run from nothing): `ape data synth --out OUT --images N --seed S --size Z`.
   */
  prepare: { synth: Array<{ out: string; images: number; seed: number; size: number }> };
  /** Periodic evaluation on a synthetic-world folder (null = off). */
  eval: { every: number; data: string; images?: number } | null;
  datasets: DatasetConfig[];
}

export const DEFAULT_TRAIN_CONFIG: Omit<TrainConfig, 'datasets' | 'output'> = {
  root: '.',
  seed: 1,
  steps: 1000,
  batchSize: 2,
  accumulate: 1,
  imageSize: 256,
  workers: 1,
  initFrom: null,
  model: { preset: 'tiny', textVocabSize: 4096 },
  optimizer: { lr: 2e-4, weightDecay: 0.05, betas: [0.9, 0.999], eps: 1e-8, clipNorm: 0.1, lrMultipliers: {} },
  schedule: {
    warmupSteps: 100,
    warmupFactor: 0.001,
    decay: 'step',
    milestones: [],
    milestoneFractions: [],
    gamma: 0.1,
    minFactor: 0,
    plannedSteps: null,
  },
  loss: {
    assignment: 'hungarian',
    weights: { cls: 1, l1: 5, giou: 2, mask: 5, dice: 5, separation: 0, pixelClass: 0 },
    matchCost: { cls: 2, l1: 5, giou: 2 },
    focalAlpha: 0.25,
    focalGamma: 2,
    maskLayers: 'last',
    pointSampling: null,
    separationMargin: 0.2,
    denoising: null,
  },
  negativeBank: { size: 256, perBatch: 64 },
  augment: { flipProbability: 0.5, scaleRange: [0.5, 1.5], crop: true, minSize: 2 },
  data: {
    splitStuff: true,
    minComponentFraction: 0.0005,
    groundingNmsIou: 0.6,
    maxPrompts: 128,
    maxSegments: 100,
    federatedSampleCats: 50,
  },
  checkpoint: { every: 500, keep: 3, format: 'full' },
  log: { every: 10 },
  prepare: { synth: [] },
  eval: null,
};

/** DINO's settings (detrex: label_noise_ratio 0.5, box_noise_scale 1.0, dn_number 100 pairs), five groups at most. */
export const DEFAULT_DENOISING: DenoisingConfig = { groups: 5, labelNoise: 0.5, boxNoise: 1, maxQueries: 200 };

/** A config problem: names the file and the field. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

const DATASET_TYPES: DatasetKind[] = ['detection', 'semantic', 'grounding', 'class-agnostic'];

/** The settings are DEFAULT_TRAIN_CONFIG's; the two maps are free-form (checked by the rules below). */
const TRAIN_SETTINGS_MERGE: MergeRules = {
  missing: 'default',
  unknown: 'error',
  freeForm: ['optimizer.lrMultipliers', 'model.overrides'],
};

/** Reads, defaults and validates a training config; relative paths become absolute. */
export function loadTrainConfig(file: string): TrainConfig {
  return parseTrainConfig(readConfigJson(file), file);
}

/** A config file's JSON; a missing file or bad JSON is a ConfigError naming the file. */
export function readConfigJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(
      `${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not valid JSON (${(err as Error).message})`}`,
    );
  }
}

/** A check of one setting: why the value is wrong, or null when it is right. */
type Rule = (value: unknown) => string | null;

const got = (v: unknown) => `got ${showValue(v)}`;
const positiveInteger: Rule = (v) =>
  Number.isInteger(v) && (v as number) > 0 ? null : `must be a positive integer, ${got(v)}`;
const integer: Rule = (v) => (Number.isInteger(v) ? null : `must be an integer, ${got(v)}`);
const positive: Rule = (v) => (typeof v === 'number' && v > 0 ? null : `must be positive, ${got(v)}`);
const nonNegative: Rule = (v) =>
  typeof v === 'number' && v >= 0 && Number.isFinite(v) ? null : `must be a non-negative number, ${got(v)}`;
const atLeast =
  (lo: number): Rule =>
  (v) =>
    typeof v === 'number' && v >= lo ? null : `must be at least ${lo}, ${got(v)}`;
/** In [lo, hi] (or [lo, hi) when `hiOpen`). */
const between =
  (lo: number, hi: number, hiOpen = false): Rule =>
  (v) =>
    typeof v === 'number' && v >= lo && (hiOpen ? v < hi : v <= hi)
      ? null
      : `must be in [${lo}, ${hi}${hiOpen ? ')' : ']'}, ${got(v)}`;
const oneOf =
  (...options: readonly unknown[]): Rule =>
  (v) =>
    options.includes(v)
      ? null
      : `must be ${options.slice(0, -1).join(', ')} or ${String(options[options.length - 1])}, ${got(v)}`;
const multipleOf =
  (n: number): Rule =>
  (v) =>
    typeof v === 'number' && v % n === 0 ? null : `must be a multiple of ${n}, ${got(v)}`;

/**
 * The checks of parseTrainConfig, by dotted path (`*` is every key of a map). A rule is skipped
 * where the path does not resolve (under a setting that is null, such as `loss.pointSampling`).
 */
const TRAIN_CONFIG_RULES: ReadonlyArray<readonly [string, Rule]> = [
  ['steps', positiveInteger],
  ['batchSize', positiveInteger],
  ['accumulate', positiveInteger],
  ['imageSize', positiveInteger],
  ['imageSize', multipleOf(32)],
  ['workers', oneOf(1, 2)],
  ['seed', integer],
  ['model.preset', oneOf(...Object.keys(APE_PRESETS))],
  ['model.textVocabSize', positiveInteger],
  ['optimizer.lr', positive],
  ['optimizer.weightDecay', nonNegative],
  ['optimizer.clipNorm', nonNegative],
  [
    'optimizer.betas',
    (v) =>
      Array.isArray(v) && v.length === 2 && v.every((b) => b >= 0 && b < 1) ? null : 'must be two numbers in [0, 1)',
  ],
  ['optimizer.lrMultipliers.*', nonNegative],
  ['schedule.decay', oneOf('constant', 'step', 'cosine')],
  ['schedule.warmupSteps', nonNegative],
  [
    'schedule.milestones',
    (v) =>
      Array.isArray(v) && v.every((m) => Number.isInteger(m) && m >= 0) ? null : 'must be a list of step numbers',
  ],
  [
    'schedule.milestoneFractions',
    (v) =>
      Array.isArray(v) && v.every((f) => typeof f === 'number' && f > 0 && f < 1)
        ? null
        : `must be a list of fractions in (0, 1), ${got(v)}`,
  ],
  ['schedule.plannedSteps', (v) => (v === null ? null : positiveInteger(v))],
  ['loss.assignment', oneOf('hungarian', 'deta')],
  ['loss.maskLayers', oneOf('last', 'all')],
  ['loss.weights.*', nonNegative],
  ['loss.separationMargin', between(-1, 1, true)],
  [
    'loss.denoising.groups',
    (v) => (Number.isInteger(v) && (v as number) >= 0 ? null : `must be a whole number, ${got(v)}`),
  ],
  ['loss.denoising.labelNoise', between(0, 1)],
  ['loss.denoising.boxNoise', nonNegative],
  ['loss.denoising.maxQueries', positiveInteger],
  ['loss.pointSampling.numPoints', positiveInteger],
  ['loss.pointSampling.oversample', atLeast(1)],
  ['loss.pointSampling.importance', between(0, 1)],
  ['negativeBank.size', nonNegative],
  ['negativeBank.perBatch', nonNegative],
  [
    'augment.scaleRange',
    (v) => (Array.isArray(v) && v[0] > 0 && v[1] >= v[0] ? null : `must be [lo, hi] with 0 < lo <= hi, ${got(v)}`),
  ],
  ['augment.flipProbability', between(0, 1)],
  ['checkpoint.every', positiveInteger],
  ['checkpoint.keep', positiveInteger],
  ['checkpoint.format', oneOf('full', 'compact')],
  ['log.every', positiveInteger],
];

/** The values at a dotted path (several where it has `*`; none under a null or a non-object). */
function valuesAt(root: unknown, path: string): Array<[string, unknown]> {
  let found: Array<[string, unknown]> = [['', root]];
  for (const key of path.split('.')) {
    const next: Array<[string, unknown]> = [];
    for (const [where, v] of found) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) continue;
      const entries = key === '*' ? Object.entries(v) : [[key, (v as Record<string, unknown>)[key]] as const];
      for (const [k, child] of entries) next.push([where === '' ? k : `${where}.${k}`, child]);
    }
    found = next;
  }
  return found;
}

/** Keys of a config file that are not settings: read separately, or notes for people. */
const NOT_SETTINGS = ['datasets', 'output', '$schema', 'comment'];

export function parseTrainConfig(json: unknown, file: string): TrainConfig {
  const fail = (field: string, why: string): never => {
    throw new ConfigError(`${file}: '${field}' ${why}`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('(top level)', 'must be an object');
  const raw = json as Record<string, unknown>;
  const settings = Object.fromEntries(Object.entries(raw).filter(([key]) => !NOT_SETTINGS.includes(key)));
  const c = checkedMerge(DEFAULT_TRAIN_CONFIG, settings, TRAIN_SETTINGS_MERGE, fail) as TrainConfig;
  if (c.loss.denoising !== null)
    c.loss.denoising = checkedMerge(
      DEFAULT_DENOISING,
      c.loss.denoising,
      { missing: 'default', unknown: 'error' },
      (p, why) => fail(p === '' ? 'loss.denoising' : `loss.denoising.${p}`, why),
    );
  const check = <V>(field: string, rule: Rule, value: V): V => {
    const why = rule(value);
    return why === null ? value : fail(field, why);
  };
  for (const [path, rule] of TRAIN_CONFIG_RULES)
    for (const [field, value] of valuesAt(c, path)) check(field, rule, value);
  if (c.workers === 2 && c.batchSize % 2 !== 0)
    fail('batchSize', `must be even to split over 2 workers, got ${c.batchSize}`);
  if (typeof raw.output !== 'string' || raw.output.length === 0) fail('output', 'must name the run folder');
  if (!Array.isArray(raw.datasets) || raw.datasets.length === 0) fail('datasets', 'must list at least one dataset');

  const root = resolve(dirname(resolve(file)), c.root);
  const path = (p: string) => resolve(root, p);
  const optionalPath = (p: string | undefined) => (p === undefined ? undefined : path(p));
  c.root = root;
  c.output = path(raw.output as string);
  if (c.initFrom !== null) {
    if (typeof c.initFrom !== 'string' || c.initFrom.length === 0)
      fail('initFrom', `must name a training checkpoint or be null, got ${JSON.stringify(c.initFrom)}`);
    c.initFrom = path(c.initFrom);
  }
  c.prepare = {
    synth: c.prepare.synth.map((entry, i) => {
      const where = `prepare.synth[${i}]`;
      if (typeof entry !== 'object' || entry === null || typeof entry.out !== 'string')
        return fail(`${where}.out`, 'must name the folder to generate');
      const images = check(`${where}.images`, positiveInteger, entry.images);
      check(`${where}.seed`, integer, entry.seed);
      const size = entry.size === undefined ? 256 : check(`${where}.size`, positiveInteger, entry.size);
      return { out: path(entry.out), images, seed: entry.seed, size };
    }),
  };
  if (c.eval) {
    check('eval.every', positiveInteger, c.eval.every);
    if (typeof c.eval.data !== 'string') fail('eval.data', 'must be a folder');
    c.eval = { ...c.eval, data: path(c.eval.data) };
  }
  const names = new Set<string>();
  c.datasets = (raw.datasets as unknown[]).map((d, i): DatasetConfig => {
    const where = `datasets[${i}]`;
    if (typeof d !== 'object' || d === null) return fail(where, 'must be an object');
    const ds = d as Record<string, unknown>;
    if (typeof ds.name !== 'string' || !ds.name) fail(`${where}.name`, 'must be a non-empty string');
    if (names.has(ds.name as string)) fail(`${where}.name`, `repeats '${ds.name}'`);
    names.add(ds.name as string);
    if (!DATASET_TYPES.includes(ds.type as DatasetKind))
      fail(`${where}.type`, `must be one of ${DATASET_TYPES.join(', ')}, got ${JSON.stringify(ds.type)}`);
    const weight = ds.weight === undefined ? 1 : ds.weight;
    if (typeof weight !== 'number' || !(weight > 0))
      fail(`${where}.weight`, `must be positive, got ${JSON.stringify(weight)}`);
    const type = ds.type as DatasetKind;
    if (type === 'semantic') {
      if (!ds.semanticIndex && !(ds.labelDir && ds.categories && ds.imageRoot))
        fail(where, "semantic sets need 'semanticIndex', or 'labelDir', 'imageRoot' and 'categories'");
    } else if (typeof ds.annotations !== 'string') {
      fail(`${where}.annotations`, 'must name the annotation file');
    }
    for (const key of ['losses'])
      if (ds[key] !== undefined && (typeof ds[key] !== 'object' || ds[key] === null))
        fail(`${where}.${key}`, 'must be an object');
    const switches = (ds.losses ?? {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(switches)) {
      if (!['decoderClass', 'boxes', 'masks', 'encoder', 'federated'].includes(k))
        fail(`${where}.losses.${k}`, 'is not a loss switch (decoderClass, boxes, masks, encoder, federated)');
      if (typeof v !== 'boolean') fail(`${where}.losses.${k}`, 'must be true or false');
    }
    return {
      name: ds.name as string,
      type,
      annotations: optionalPath(ds.annotations as string | undefined),
      semanticIndex: optionalPath(ds.semanticIndex as string | undefined),
      labelDir: optionalPath(ds.labelDir as string | undefined),
      categories: optionalPath(ds.categories as string | undefined),
      imageRoot: optionalPath(ds.imageRoot as string | undefined),
      weight: weight as number,
      losses: switches as Partial<LossSwitches>,
      federated: ds.federated === true,
    };
  });
  return c;
}
