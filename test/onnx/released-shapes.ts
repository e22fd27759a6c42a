/**
 * The released presets (ape-ti, ape-d) with random weights of the real detector shapes and a
 * one-layer stand-in text tower of the real output width (with a hashing word tokenizer, so that
 * predict takes texts): the ONNX export and its parity only concern the detector (the prompt
 * embeddings are graph inputs), and the real text tower alone is 694 M parameters.
 */
import { ApeModel } from '../../src/inference/ape-model.js';
import { APE_PRESETS, type ApePresetName } from '../../src/modeling/config.js';
import { WordTokenizer } from '../../src/text/word-tokenizer.js';

export function releasedShapesNetwork(preset: Exclude<ApePresetName, 'tiny'>, seed = 0): ApeModel {
  const config = APE_PRESETS[preset]();
  config.text.encoder = { ...config.text.encoder, vocabSize: 1024, width: 64, heads: 1, layers: 1 };
  config.text.tokenizer = { kind: 'word' };
  const tokenizer = WordTokenizer.hashing(config.text.encoder.vocabSize, config.text.encoder.contextLength);
  return new ApeModel(config, tokenizer, seed);
}
