/** Shared setup of the training-loop tests: a few 64x64 synthetic images and a very small model. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSynthDataset } from '../../src/data/synth/write-dataset.js';
import { parseTrainConfig, type TrainConfig } from '../../src/training/config.js';
import { swigluHidden } from '../../src/modeling/backbone/eva02-vit.js';

/** A model small enough to take a training step in a fraction of a second. */
export const TINY_TEST_MODEL = {
  backbone: {
    vit: {
      embedDim: 64,
      depth: 2,
      numHeads: 2,
      mlpHidden: swigluHidden(64),
      windowSize: 2,
      windowBlockIndexes: [0],
      dropPathRate: 0,
      pretrainImgSize: 64,
      imgSize: 64,
    },
    pyramid: { inChannels: 64, outChannels: 64 },
  },
  transformer: {
    embedDim: 64,
    numHeads: 2,
    ffnDim: 128,
    encoderLayers: 1,
    decoderLayers: 2,
    proposals: { numQueries: 20 },
  },
  fusion: { embedDim: 64, numHeads: 2 },
  text: { encoder: { width: 64, heads: 2, layers: 1, embedDim: 64 } },
};

export async function makeSynthDir(images: number, seed = 3): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ape-train-'));
  await writeSynthDataset(join(dir, 'synth'), { images, seed, size: 64, config: { minObjects: 2, maxObjects: 3 } });
  return dir;
}

export function tinyConfig(dir: string, extra: Record<string, unknown> = {}): TrainConfig {
  const json = tinyConfigJson(dir, extra);
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(json));
  return parseTrainConfig(json, file);
}

/** The JSON of tinyConfig (for configs built on it, such as a pretraining config). */
export function tinyConfigJson(dir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    root: dir,
    output: 'run',
    seed: 5,
    steps: 4,
    batchSize: 2,
    imageSize: 64,
    model: { preset: 'tiny', textVocabSize: 256, overrides: TINY_TEST_MODEL },
    optimizer: { lr: 1e-3, clipNorm: 1 },
    schedule: { warmupSteps: 0, decay: 'constant' },
    checkpoint: { every: 1000, keep: 2 },
    negativeBank: { size: 16, perBatch: 8 },
    datasets: [
      { name: 'inst', type: 'detection', annotations: 'synth/instances.json', imageRoot: 'synth/images', weight: 1 },
      { name: 'ground', type: 'grounding', annotations: 'synth/grounding.json', imageRoot: 'synth/images', weight: 1 },
      {
        name: 'seg',
        type: 'class-agnostic',
        annotations: 'synth/segments.json',
        imageRoot: 'synth/images',
        weight: 0.5,
      },
    ],
    ...extra,
  };
}
