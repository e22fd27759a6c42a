/**
 * The released presets (ape-ti, ape-d) with random weights of the real detector shapes and a
 * one-layer stand-in text tower of the real output width: the ONNX export and its parity only
 * concern the detector (the prompt embeddings are graph inputs), and the real text tower alone is
 * 694 M parameters.
 */
import { ApeNetwork } from '../../src/modeling/ape-network.js';
import { APE_PRESETS, type ApePresetName } from '../../src/modeling/config.js';

export function releasedShapesNetwork(preset: Exclude<ApePresetName, 'tiny'>, seed = 0): ApeNetwork {
  const config = APE_PRESETS[preset]();
  config.text.encoder = { ...config.text.encoder, vocabSize: 1024, width: 64, heads: 1, layers: 1 };
  const enc = config.text.encoder;
  const tokenizer = {
    vocabSize: enc.vocabSize,
    contextLength: enc.contextLength,
    sot: enc.vocabSize - 2,
    eot: enc.vocabSize - 1,
    tokenize(): number[][] {
      throw new Error('releasedShapesNetwork: this network takes prompt embeddings, not texts');
    },
  };
  return new ApeNetwork(config, tokenizer, seed);
}
