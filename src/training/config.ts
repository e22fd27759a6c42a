import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { DatasetKind } from '../data/types.js';
import type { DatasetSpec } from '../data/open-dataset.js';
import type { LossSwitches } from '../data/sampler/loss-switches.js';
import type { ApePresetName } from '../modeling/config.js';
import type { LossWeights } from './criterion.js';
import type { MatchCostWeights } from './assign/match-cost.js';
import type { PointSamplingOptions } from './losses/point-sampling.js';

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
  schedule: {
    warmupSteps: number;
    warmupFactor: number;
    decay: 'constant' | 'step' | 'cosine';
    milestones: number[];
    gamma: number;
    minFactor: number;
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
  checkpoint: { every: number; keep: number };
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
  schedule: { warmupSteps: 100, warmupFactor: 0.001, decay: 'step', milestones: [], gamma: 0.1, minFactor: 0 },
  loss: {
    assignment: 'hungarian',
    weights: { cls: 1, l1: 5, giou: 2, mask: 5, dice: 5, separation: 0, pixelClass: 0 },
    matchCost: { cls: 2, l1: 5, giou: 2 },
    focalAlpha: 0.25,
    focalGamma: 2,
    maskLayers: 'last',
    pointSampling: null,
    separationMargin: 0.2,
  },
  negativeBank: { size: 256, perBatch: 64 },
  augment: { flipProbability: 0.5, scaleRange: [0.5, 1.5], crop: true, minSize: 2 },
  data: { splitStuff: true, minComponentFraction: 0.0005, groundingNmsIou: 0.6, maxPrompts: 128, maxSegments: 100, federatedSampleCats: 50 },
  checkpoint: { every: 500, keep: 3 },
  log: { every: 10 },
  prepare: { synth: [] },
  eval: null,
};

/** A config problem: names the file and the field. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

const DATASET_TYPES: DatasetKind[] = ['detection', 'semantic', 'grounding', 'class-agnostic'];

/** Reads, defaults and validates a training config; relative paths become absolute. */
export function loadTrainConfig(file: string): TrainConfig {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not valid JSON (${(err as Error).message})`}`);
  }
  return parseTrainConfig(json, file);
}

export function parseTrainConfig(json: unknown, file: string): TrainConfig {
  const fail = (field: string, why: string): never => {
    throw new ConfigError(`${file}: '${field}' ${why}`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('(top level)', 'must be an object');
  const raw = json as Record<string, unknown>;
  const merged = mergeDefaults(DEFAULT_TRAIN_CONFIG as unknown as Record<string, unknown>, raw, '', fail) as unknown as TrainConfig;
  const c = merged;

  const positiveInt = (field: string, v: number) => (Number.isInteger(v) && v > 0 ? v : fail(field, `must be a positive integer, got ${JSON.stringify(v)}`));
  const nonNegative = (field: string, v: number) => (typeof v === 'number' && v >= 0 && Number.isFinite(v) ? v : fail(field, `must be a non-negative number, got ${JSON.stringify(v)}`));
  positiveInt('steps', c.steps);
  positiveInt('batchSize', c.batchSize);
  positiveInt('accumulate', c.accumulate);
  positiveInt('imageSize', c.imageSize);
  if (c.imageSize % 32 !== 0) fail('imageSize', `must be a multiple of 32, got ${c.imageSize}`);
  if (c.workers !== 1 && c.workers !== 2) fail('workers', `must be 1 or 2, got ${JSON.stringify(c.workers)}`);
  if (c.workers === 2 && c.batchSize % 2 !== 0) fail('batchSize', `must be even to split over 2 workers, got ${c.batchSize}`);
  if (!Number.isInteger(c.seed)) fail('seed', `must be an integer, got ${JSON.stringify(c.seed)}`);
  if (!['tiny', 'ape-ti', 'ape-d'].includes(c.model.preset)) fail('model.preset', `must be tiny, ape-ti or ape-d, got ${JSON.stringify(c.model.preset)}`);
  positiveInt('model.textVocabSize', c.model.textVocabSize);
  if (!(c.optimizer.lr > 0)) fail('optimizer.lr', `must be positive, got ${JSON.stringify(c.optimizer.lr)}`);
  nonNegative('optimizer.weightDecay', c.optimizer.weightDecay);
  nonNegative('optimizer.clipNorm', c.optimizer.clipNorm);
  if (!Array.isArray(c.optimizer.betas) || c.optimizer.betas.length !== 2 || !c.optimizer.betas.every((b) => b >= 0 && b < 1)) fail('optimizer.betas', 'must be two numbers in [0, 1)');
  for (const [prefix, f] of Object.entries(c.optimizer.lrMultipliers)) nonNegative(`optimizer.lrMultipliers.${prefix}`, f);
  if (!['constant', 'step', 'cosine'].includes(c.schedule.decay)) fail('schedule.decay', `must be constant, step or cosine, got ${JSON.stringify(c.schedule.decay)}`);
  nonNegative('schedule.warmupSteps', c.schedule.warmupSteps);
  if (!Array.isArray(c.schedule.milestones) || !c.schedule.milestones.every((m) => Number.isInteger(m) && m >= 0)) fail('schedule.milestones', 'must be a list of step numbers');
  if (!['hungarian', 'deta'].includes(c.loss.assignment)) fail('loss.assignment', `must be hungarian or deta, got ${JSON.stringify(c.loss.assignment)}`);
  if (!['last', 'all'].includes(c.loss.maskLayers)) fail('loss.maskLayers', `must be last or all, got ${JSON.stringify(c.loss.maskLayers)}`);
  for (const [k, v] of Object.entries(c.loss.weights)) nonNegative(`loss.weights.${k}`, v);
  if (!(c.loss.separationMargin >= -1 && c.loss.separationMargin < 1)) fail('loss.separationMargin', `must be in [-1, 1), got ${JSON.stringify(c.loss.separationMargin)}`);
  if (c.loss.pointSampling !== null) {
    const p = c.loss.pointSampling;
    positiveInt('loss.pointSampling.numPoints', p.numPoints);
    if (!(p.oversample >= 1)) fail('loss.pointSampling.oversample', 'must be at least 1');
    if (!(p.importance >= 0 && p.importance <= 1)) fail('loss.pointSampling.importance', 'must be in [0, 1]');
  }
  nonNegative('negativeBank.size', c.negativeBank.size);
  nonNegative('negativeBank.perBatch', c.negativeBank.perBatch);
  const [lo, hi] = c.augment.scaleRange;
  if (!(lo > 0 && hi >= lo)) fail('augment.scaleRange', `must be [lo, hi] with 0 < lo <= hi, got ${JSON.stringify(c.augment.scaleRange)}`);
  if (!(c.augment.flipProbability >= 0 && c.augment.flipProbability <= 1)) fail('augment.flipProbability', 'must be in [0, 1]');
  positiveInt('checkpoint.every', c.checkpoint.every);
  positiveInt('checkpoint.keep', c.checkpoint.keep);
  positiveInt('log.every', c.log.every);
  if (typeof raw.output !== 'string' || raw.output.length === 0) fail('output', 'must name the run folder');
  if (!Array.isArray(raw.datasets) || raw.datasets.length === 0) fail('datasets', 'must list at least one dataset');

  const root = resolve(dirname(resolve(file)), c.root);
  const path = (p: string | undefined) => (p === undefined ? undefined : resolve(root, p));
  c.root = root;
  c.output = path(raw.output as string)!;
  if (c.initFrom !== null) {
    if (typeof c.initFrom !== 'string' || c.initFrom.length === 0) fail('initFrom', `must name a training checkpoint or be null, got ${JSON.stringify(c.initFrom)}`);
    c.initFrom = path(c.initFrom)!;
  }
  if (!Array.isArray(c.prepare.synth)) fail('prepare.synth', 'must be a list');
  c.prepare = {
    synth: c.prepare.synth.map((entry, i) => {
      const where = `prepare.synth[${i}]`;
      if (typeof entry !== 'object' || entry === null || typeof entry.out !== 'string') return fail(`${where}.out`, 'must name the folder to generate');
      const images = positiveInt(`${where}.images`, entry.images);
      if (!Number.isInteger(entry.seed)) fail(`${where}.seed`, `must be an integer, got ${JSON.stringify(entry.seed)}`);
      const size = entry.size === undefined ? 256 : positiveInt(`${where}.size`, entry.size);
      return { out: path(entry.out)!, images, seed: entry.seed, size };
    }),
  };
  if (c.eval) {
    positiveInt('eval.every', c.eval.every);
    if (typeof c.eval.data !== 'string') fail('eval.data', 'must be a folder');
    c.eval = { ...c.eval, data: path(c.eval.data)! };
  }
  const names = new Set<string>();
  c.datasets = (raw.datasets as unknown[]).map((d, i): DatasetConfig => {
    const where = `datasets[${i}]`;
    if (typeof d !== 'object' || d === null) return fail(where, 'must be an object');
    const ds = d as Record<string, unknown>;
    if (typeof ds.name !== 'string' || !ds.name) fail(`${where}.name`, 'must be a non-empty string');
    if (names.has(ds.name as string)) fail(`${where}.name`, `repeats '${ds.name}'`);
    names.add(ds.name as string);
    if (!DATASET_TYPES.includes(ds.type as DatasetKind)) fail(`${where}.type`, `must be one of ${DATASET_TYPES.join(', ')}, got ${JSON.stringify(ds.type)}`);
    const weight = ds.weight === undefined ? 1 : ds.weight;
    if (typeof weight !== 'number' || !(weight > 0)) fail(`${where}.weight`, `must be positive, got ${JSON.stringify(weight)}`);
    const type = ds.type as DatasetKind;
    if (type === 'semantic') {
      if (!ds.semanticIndex && !(ds.labelDir && ds.categories && ds.imageRoot)) fail(where, "semantic sets need 'semanticIndex', or 'labelDir', 'imageRoot' and 'categories'");
    } else if (typeof ds.annotations !== 'string') {
      fail(`${where}.annotations`, 'must name the annotation file');
    }
    for (const key of ['losses']) if (ds[key] !== undefined && (typeof ds[key] !== 'object' || ds[key] === null)) fail(`${where}.${key}`, 'must be an object');
    const switches = (ds.losses ?? {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(switches)) {
      if (!['decoderClass', 'boxes', 'masks', 'encoder', 'federated'].includes(k)) fail(`${where}.losses.${k}`, 'is not a loss switch (decoderClass, boxes, masks, encoder, federated)');
      if (typeof v !== 'boolean') fail(`${where}.losses.${k}`, 'must be true or false');
    }
    return {
      name: ds.name as string,
      type,
      annotations: path(ds.annotations as string | undefined),
      semanticIndex: path(ds.semanticIndex as string | undefined),
      labelDir: path(ds.labelDir as string | undefined),
      categories: path(ds.categories as string | undefined),
      imageRoot: path(ds.imageRoot as string | undefined),
      weight: weight as number,
      losses: switches as Partial<LossSwitches>,
      federated: ds.federated === true,
    };
  });
  return c;
}

/** Fills `value` from `defaults` recursively; unknown keys are errors (typos would silently do nothing). */
function mergeDefaults(defaults: Record<string, unknown>, value: Record<string, unknown>, prefix: string, fail: (f: string, why: string) => never): Record<string, unknown> {
  const out: Record<string, unknown> = { ...defaults };
  for (const [key, v] of Object.entries(value)) {
    const field = prefix + key;
    if (prefix === '' && (key === 'datasets' || key === 'output' || key === '$schema' || key === 'comment')) continue;
    if (!(key in defaults)) {
      // Free-form maps.
      if (prefix === 'optimizer.lrMultipliers.' || prefix === 'model.overrides.' || field === 'model.overrides' || prefix.startsWith('model.overrides.')) {
        out[key] = v;
        continue;
      }
      if (field === 'eval' || field === 'model.overrides') {
        out[key] = v;
        continue;
      }
      fail(field, 'is not a known setting');
    }
    const d = defaults[key];
    if (d !== null && typeof d === 'object' && !Array.isArray(d) && v !== null && typeof v === 'object' && !Array.isArray(v) && key !== 'lrMultipliers') {
      out[key] = mergeDefaults(d as Record<string, unknown>, v as Record<string, unknown>, field + '.', fail);
    } else if (d !== null && d !== undefined && v !== null && typeof d !== typeof v) {
      fail(field, `must be ${Array.isArray(d) ? 'a list' : `a ${typeof d}`}, got ${JSON.stringify(v)}`);
    } else {
      out[key] = v;
    }
  }
  return out;
}
