import { APE_PRESETS, tinyConfig, type ApeConfig, type ApePresetName } from '../modeling/config.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import { WordTokenizer } from '../text/word-tokenizer.js';
import { ApeModel } from './ape-model.js';

export interface CreateModelOptions {
  /**
   * The tokenizer to use; required for 'clip-bpe' configs (in Node, `loadClipTokenizer` of `ape/node`
   * reads the merges file), otherwise a hashing word tokenizer built from the config.
   */
  tokenizer?: TextTokenizer;
  /** Seed of the parameter initialisation. */
  seed?: number;
}

/** The config of a preset name, or a copy of a given config. */
export function resolveConfig(preset: ApePresetName | ApeConfig): ApeConfig {
  if (typeof preset !== 'string') return structuredClone(preset);
  const make = APE_PRESETS[preset];
  if (!make) throw new Error(`unknown preset '${String(preset)}' (${Object.keys(APE_PRESETS).join(', ')})`);
  return make();
}

/** A freshly initialised model from a preset or config. */
export async function createModel(
  preset: ApePresetName | ApeConfig,
  options: CreateModelOptions = {},
): Promise<ApeModel> {
  let config = resolveConfig(preset);
  let tokenizer = options.tokenizer;
  if (!tokenizer) {
    const t = config.text.tokenizer;
    if (t.kind !== 'word') {
      throw new Error(
        `createModel: the '${config.name}' config uses the CLIP BPE tokenizer; pass tokenizer (loadClipTokenizer of ${t.vocabFile})`,
      );
    }
    tokenizer = WordTokenizer.hashing(config.text.encoder.vocabSize, config.text.encoder.contextLength);
  }
  if (preset === 'tiny' && tokenizer.vocabSize !== config.text.encoder.vocabSize) {
    // The tiny text tower is sized by its tokenizer's vocabulary.
    config = { ...tinyConfig(tokenizer.vocabSize) };
  }
  return new ApeModel(config, tokenizer, options.seed ?? 0);
}
