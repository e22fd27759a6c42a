import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/engine.js';
import { createModel } from '../../src/inference/create-model.js';
import { saveModel } from '../../src/inference/model-files.js';
import { tinyConfig, type ApeConfig } from '../../src/modeling/config.js';
import { WordTokenizer } from '../../src/text/word-tokenizer.js';

/**
 * A randomly initialised, cut-down tiny APE (128-pixel input, 2 ViT blocks, one encoder and one
 * decoder layer, 50 queries): every part of the real network, small enough that a prediction
 * takes well under a second. Its scores are meaningless; tests use threshold 0 and check
 * structure and drawn pixels.
 */
export function testModelConfig(): ApeConfig {
  const c = tinyConfig(64);
  c.name = 'test-tiny';
  c.input.size = 128;
  c.backbone.vit.depth = 2;
  c.backbone.vit.windowBlockIndexes = [0];
  c.transformer.encoderLayers = 1;
  c.transformer.decoderLayers = 1;
  c.transformer.proposals.numQueries = 50;
  return c;
}

/**
 * Writes the test model to a fresh temporary folder; call `remove` when done. With `words`, its
 * tokenizer knows those words (and warns about others); without, it hashes every word.
 */
export async function makeTestModelDir(
  seed = 11,
  words?: string[],
): Promise<{ dir: string; remove: () => Promise<void> }> {
  await initEngine({ backend: 'wasm' });
  const dir = await mkdtemp(join(tmpdir(), 'ape-test-model-'));
  const config = testModelConfig();
  const { vocabSize, contextLength } = config.text.encoder;
  const tokenizer = words ? new WordTokenizer(words, vocabSize - 4 - words.length, contextLength) : undefined;
  const model = await createModel(config, { seed, ...(tokenizer ? { tokenizer } : {}) });
  await saveModel(model, dir);
  model.dispose();
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
