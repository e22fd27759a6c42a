import { APE_CONFIG_SHAPE, APE_PRESETS, type ApeConfig, type ApePresetName } from '../modeling/config.js';
import { checkedMerge } from '../util/checked-merge.js';
import { ApeModel } from '../inference/ape-model.js';
import { WordTokenizer, type WordTokenizerJson } from '../text/word-tokenizer.js';
import type { TrainingDataset } from '../data/dataset.js';

/**
 * The network a training run starts from: a preset, deep overrides, the training canvas as input
 * size, and (for word-level text towers) a tokenizer whose vocabulary comes from the training
 * prompts. The tokenizer is saved in checkpoints so that a resumed run tokenises identically.
 */
export function trainingModelConfig(
  preset: ApePresetName,
  overrides: Record<string, unknown> | undefined,
  imageSize: number,
  textVocabSize: number,
): ApeConfig {
  const base = APE_PRESETS[preset]();
  if (base.text.tokenizer.kind === 'word') base.text.encoder = { ...base.text.encoder, vocabSize: textVocabSize };
  const merged = checkedMerge(
    base,
    overrides ?? {},
    { ...APE_CONFIG_SHAPE, missing: 'default', unknown: 'error' },
    (path, why) => {
      throw new Error(`${path === '' ? 'model.overrides' : `model.overrides.${path}`} ${why}`);
    },
  );
  merged.input = { ...merged.input, size: imageSize };
  return merged;
}

/** Every prompt text the datasets can produce: category names and grounding sentences. */
export function trainingTexts(datasets: readonly TrainingDataset[]): string[] {
  const texts: string[] = [];
  for (const ds of datasets) {
    texts.push(...ds.prompts);
    if (ds.kind === 'grounding')
      for (const im of ds.records.images) for (const a of im.annotations) texts.push(...(a.sentences ?? []));
  }
  return texts;
}

export function buildTokenizer(
  config: ApeConfig,
  datasets: readonly TrainingDataset[],
  saved?: WordTokenizerJson,
): WordTokenizer {
  if (config.text.tokenizer.kind !== 'word') {
    throw new Error(
      `training from scratch supports word-level text towers only; preset '${config.name}' uses ${config.text.tokenizer.kind}`,
    );
  }
  if (saved) return WordTokenizer.fromJSON(saved, 'checkpoint tokenizer');
  return WordTokenizer.fromTexts(trainingTexts(datasets), config.text.encoder.vocabSize, {
    contextLength: config.text.encoder.contextLength,
  });
}

/** The model trained: an ApeModel, so that the same object predicts (evaluation) and saves as a model folder. */
export function buildNetwork(config: ApeConfig, tokenizer: WordTokenizer, seed: number): ApeModel {
  return new ApeModel(config, tokenizer, seed);
}
