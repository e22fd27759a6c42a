import { resolve, join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { parseCommandArgs, positiveIntegerOption } from './args.js';
import { initEngine } from '../engine/engine.js';
import { exportNetworkFromFiles } from '../inference/export-from-files.js';
import { exportKey } from '../onnx/export-network.js';
import { filesHash } from '../onnx/export-files.js';
import { pendingNetworkExport } from '../onnx/pending-export.js';
import { CONFIG_FILE, WEIGHTS_FILE, parseModelConfig } from '../inference/model-folder.js';
import { pyramidLevels } from '../modeling/config.js';
import { defaultModelDir } from './model-option.js';
import { UsageError, type Command } from './command.js';
import { exportProgressDisplay } from './export-progress.js';

const usage = `usage: ape export [--model DIR] [--size N] [--vocab N] [--sentences N] [--out DIR]
  Writes the model's network forward as ONNX (opset 17) for ONNX Runtime: image and prompt
  embeddings in; last-layer logits, boxes and mask logits out. The graph is recorded from one
  TF.js forward of the same network code that trains, made from the detector alone (the text
  tower is not loaded: prompt embeddings are inputs); the weights are read from the checkpoint.
  --model DIR       model folder (default: the shipped models/default)
  --size N          square input side (default: the model's input size)
  --vocab N         number of vocabulary prompts the graph takes (default 14)
  --sentences N     sentence rows: the graph runs 1 to N sentences, padding masked (default 0;
                    predict --engine ort uses 0, 1, 2, 4, 8, ... with --vocab 0)
  --out DIR         output folder (default: DIR/onnx/N-vV-sS, where predict --engine ort looks)
  Every image aspect ratio runs on the same export: the padding geometry is a graph input.`;

function countOption(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a whole number, got '${value}'`);
  return Number(value);
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      size: { type: 'string' },
      vocab: { type: 'string' },
      sentences: { type: 'string' },
      out: { type: 'string' },
    },
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const modelDir = resolve(values.model ?? defaultModelDir());
  const vocabulary = countOption(values.vocab, 'vocab', 14);
  const sentences = countOption(values.sentences, 'sentences', 0);
  if (vocabulary + sentences === 0) throw new UsageError('--vocab and --sentences cannot both be 0');
  const configPath = join(modelDir, CONFIG_FILE);
  const raw = await readFile(configPath, 'utf8').catch((e: Error) => {
    throw new Error(`ape export: cannot read ${configPath}: ${e.message}`);
  });
  const config = parseModelConfig(raw, configPath);
  const size = positiveIntegerOption(values.size, 'size') ?? config.input.size;
  const coarsest = Math.max(...pyramidLevels(config).strides);
  if (size % coarsest !== 0)
    throw new UsageError(`--size must be a multiple of ${coarsest} (the coarsest feature stride), got ${size}`);
  await initEngine();
  const out = resolve(values.out ?? join(modelDir, 'onnx', exportKey({ size, vocabulary, sentences })));
  const started = performance.now();
  console.error(
    `ape export: recording one forward of ${config.name}'s detector at ${size}x${size}, ${vocabulary} vocabulary + ${sentences} sentence prompts ...`,
  );
  const shown = exportProgressDisplay('ape export');
  const exported = await exportNetworkFromFiles(
    { dir: modelDir, config },
    { size, vocabulary, sentences },
    await filesHash([configPath, join(modelDir, WEIGHTS_FILE)]),
    { onProgress: shown.onProgress },
  );
  const pending = pendingNetworkExport(exported, shown.onProgress);
  await pending.write(out);
  shown.finish();
  console.log(
    `${out}: ${exported.manifest.segments.length} segments, ${(pending.bytes / 1e6).toFixed(1)} MB, ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  return 0;
}

export const command: Command = {
  name: 'export',
  summary: 'write the network forward as ONNX for ONNX Runtime',
  usage,
  run,
};
