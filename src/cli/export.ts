import { resolve, join } from 'node:path';
import { parseCommandArgs, positiveIntegerOption } from './args.js';
import { initEngine } from '../engine/engine.js';
import { loadModel } from '../inference/model-files.js';
import { exportKey, exportNetwork } from '../onnx/export-network.js';
import { filesHash, writeNetworkExport } from '../onnx/export-files.js';
import { CONFIG_FILE, WEIGHTS_FILE } from '../inference/model-folder.js';
import { defaultModelDir } from './model-option.js';
import { UsageError, type Command } from './command.js';

const usage = `usage: ape export [--model DIR] [--size N] [--vocab N] [--sentences N] [--out DIR]
  Writes the model's network forward as ONNX (opset 17) for ONNX Runtime: image and prompt
  embeddings in; last-layer logits, boxes and mask logits out. The graph is recorded from one
  TF.js forward of the same network code that trains.
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
  await initEngine();
  const model = await loadModel(modelDir, { engine: 'tfjs' });
  try {
    const size = positiveIntegerOption(values.size, 'size') ?? model.config.input.size;
    const coarsest = Math.max(...model.levelStrides);
    if (size % coarsest !== 0)
      throw new UsageError(`--size must be a multiple of ${coarsest} (the coarsest feature stride), got ${size}`);
    const out = resolve(values.out ?? join(modelDir, 'onnx', exportKey({ size, vocabulary, sentences })));
    const started = performance.now();
    console.error(
      `ape export: recording one forward of ${model.config.name} at ${size}x${size}, ${vocabulary} vocabulary + ${sentences} sentence prompts ...`,
    );
    const exported = exportNetwork(
      model,
      { size, vocabulary, sentences },
      await filesHash([join(modelDir, CONFIG_FILE), join(modelDir, WEIGHTS_FILE)]),
    );
    await writeNetworkExport(out, exported);
    const bytes = exported.files.reduce((a, f) => a + f.length, 0);
    console.log(
      `${out}: ${exported.manifest.segments.length} segments, ${(bytes / 1e6).toFixed(1)} MB, ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  } finally {
    model.dispose();
  }
  return 0;
}

export const command: Command = {
  name: 'export',
  summary: 'write the network forward as ONNX for ONNX Runtime',
  usage,
  run,
};
