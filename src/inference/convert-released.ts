import { copyFile, mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { tf } from '../engine/engine.js';
import { describeParameters } from '../convert/parameter-shapes.js';
import { releasedTargets } from '../convert/released-mapping.js';
import { TorchCheckpoint } from '../io/torch/checkpoint.js';
import {
  ConversionError,
  missingMessage,
  planConversion,
  writeConversion,
  type ConversionReport,
} from '../convert/convert-checkpoint.js';
import type { ApeConfig } from '../modeling/config.js';
import { BUNDLED_CLIP_VOCAB } from '../text/bundled-vocab.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import { writeJsonFile } from '../util/write-json.js';
import { ApeModel } from './ape-model.js';
import { CONFIG_FILE, WEIGHTS_FILE, modelConfigFile, tokenizerFileName } from './model-folder.js';

/**
 * A model's parameter names and shapes, described without allocating them. The network wants a
 * tokenizer only for its vocabulary size and context length (checked against the text tower);
 * this one carries those numbers and is never asked to tokenize.
 */
export function presetParameterShapes(config: ApeConfig): Map<string, number[]> {
  const enc = config.text.encoder;
  const sizes: TextTokenizer = {
    vocabSize: enc.vocabSize,
    contextLength: enc.contextLength,
    sot: enc.vocabSize - 2,
    eot: enc.vocabSize - 1,
    tokenize() {
      throw new Error('presetParameterShapes: this tokenizer only describes sizes');
    },
  };
  return describeParameters(() => new ApeModel(config, sizes));
}

export interface ConvertToFolderOptions {
  /** Write the weights even when some parameters are missing (loadModel refuses such a folder). */
  allowMissing?: boolean;
  /** CLIP merges file copied into the folder for 'clip-bpe' configs (default: the bundled one). */
  vocabPath?: string;
  /** Called once the plan is made, before any tensor is read (to print it). */
  onPlan?: (report: Omit<ConversionReport, 'bytes'>) => void;
  /** Called after each tensor is written. */
  onTensor?: (done: number, total: number, name: string) => void;
}

/**
 * Converts a released APE checkpoint (torch.save zip) into the model folder `outDir` for `config`:
 * model.safetensors, config.json, conversion.json (what was used, unused, missing) and, for CLIP
 * BPE models, the merges file. Everything is checked before anything is written.
 */
export async function convertCheckpointToFolder(
  checkpoint: string,
  config: ApeConfig,
  outDir: string,
  options: ConvertToFolderOptions = {},
): Promise<ConversionReport> {
  // Describing the parameters makes scalars: any backend will do, so take whichever is (or gets) ready.
  await tf.ready();
  const expected = presetParameterShapes(config);
  const ckpt = await TorchCheckpoint.open(checkpoint);
  try {
    const { entries, report } = planConversion(ckpt, {
      targets: (key, info) => releasedTargets(key, info.shape.length),
      expected,
    });
    options.onPlan?.(report);
    if (report.missing.length && !options.allowMissing) {
      throw new ConversionError(`${missingMessage(checkpoint, report.missing)} (--allow-missing writes the rest)`);
    }
    await mkdir(outDir, { recursive: true });
    const bytes = await writeConversion(ckpt, entries, join(outDir, WEIGHTS_FILE), {
      metadata: { format: 'ape', config: config.name, source: basename(checkpoint) },
      ...(options.onTensor ? { onTensor: options.onTensor } : {}),
    });
    await writeJsonFile(join(outDir, CONFIG_FILE), modelConfigFile(config), 2);
    await writeJsonFile(
      join(outDir, 'conversion.json'),
      { source: checkpoint, preset: config.name, ...report, bytes },
      2,
    );
    if (config.text.tokenizer.kind === 'clip-bpe')
      await copyFile(options.vocabPath ?? BUNDLED_CLIP_VOCAB, join(outDir, tokenizerFileName(config)));
    return { ...report, bytes };
  } finally {
    await ckpt.close();
  }
}
