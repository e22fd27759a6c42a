import { copyFile, mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { initEngine } from '../engine/engine.js';
import { releasedTargets } from '../convert/released-mapping.js';
import { describeParameters } from '../convert/parameter-shapes.js';
import { ConversionError, missingMessage, planConversion, writeConversion, type ConversionReport } from '../convert/convert-checkpoint.js';
import { TorchCheckpoint } from '../io/torch/checkpoint.js';
import { ApeModel } from '../inference/ape-model.js';
import { CONFIG_FILE, WEIGHTS_FILE } from '../inference/model-files.js';
import { modelConfigFile } from '../inference/model-folder.js';
import { APE_PRESETS, type ApeConfig, type ApePresetName } from '../modeling/config.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import { Progress } from '../util/progress.js';
import { writeJsonFile } from '../util/write-json.js';
import { parseCommandArgs } from './args.js';
import type { Command } from './command.js';
import { UsageError } from './command.js';

const usage = `usage: ape convert CHECKPOINT.pth --preset ape-ti|ape-d|tiny --out DIR [--vocab MERGES] [--allow-missing] [--list-used]
  Converts a released APE checkpoint (torch.save zip; read without Python, no pickled code runs)
  into the model folder DIR, one tensor at a time: model.safetensors (float32, this project's
  parameter names and layouts) and config.json (the preset), the folder loadModel reads. Prints
  which checkpoint keys were used and unused, and which model parameters are missing;
  DIR/conversion.json has it all.
    --preset NAME      the model the weights are for: ape-ti or ape-d (released), tiny
    --out DIR          output folder (created if needed)
    --vocab PATH       CLIP BPE merges file (bpe_simple_vocab_16e6.txt.gz) to copy into DIR
    --allow-missing    write the file even when some model parameters are not in the checkpoint
                       (loadModel will refuse such a folder; it is for inspection)
    --list-used        print every used key with its parameter name and layout change`;

/**
 * The preset model's parameter names and shapes, described without allocating them. The network
 * wants a tokenizer only for its vocabulary size and context length (checked against the text
 * tower); this one carries those numbers and is never asked to tokenize.
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

/** `backbone 149, neck 12, ...`: counts by the first part of the name after `model_vision.`. */
function groupCounts(keys: string[]): string {
  const counts = new Map<string, number>();
  for (const k of keys) {
    const g = k.replace(/^model_vision\./, '').split('.')[0]!;
    counts.set(g, (counts.get(g) ?? 0) + 1);
  }
  return [...counts].map(([g, n]) => `${g} ${n}`).join(', ');
}

function printReport(report: Omit<ConversionReport, 'bytes'>, listUsed: boolean): void {
  const used = report.used;
  console.log(`used ${used.length} checkpoint tensor(s) -> ${new Set(used.map((e) => e.name)).size} parameter(s): ${groupCounts(used.map((e) => e.key))}`);
  if (listUsed) for (const e of used) console.log(`  ${e.key} -> ${e.name} [${e.shape.join(', ')}] ${e.layout}${e.part ? ` part ${e.part.index + 1}/${e.part.of}` : ''}${e.sourceDtype !== 'F32' ? ` from ${e.sourceDtype}` : ''}`);
  console.log(`unused ${report.unused.length} checkpoint key(s)${report.unused.length ? ':' : ''}`);
  for (const k of report.unused) console.log(`  ${k}`);
  console.log(`missing ${report.missing.length} model parameter(s)${report.missing.length ? ':' : ''}`);
  for (const k of report.missing) console.log(`  ${k}`);
  if (report.skippedTopLevel.length) console.log(`skipped top-level entries: ${report.skippedTopLevel.join(', ')}`);
}

export const command: Command = {
  name: 'convert',
  summary: 'convert a released APE checkpoint (.pth) to safetensors + config',
  usage,
  async run(argv: string[]): Promise<number> {
    const { values, positionals } = parseCommandArgs({
      args: argv,
      options: {
        preset: { type: 'string' },
        out: { type: 'string' },
        'allow-missing': { type: 'boolean', default: false },
        'list-used': { type: 'boolean', default: false },
        vocab: { type: 'string' },
      },
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length !== 1) throw new UsageError(`expected one checkpoint path, got ${positionals.length}`);
    const checkpoint = positionals[0]!;
    const preset = values.preset as ApePresetName | undefined;
    const presets = Object.keys(APE_PRESETS);
    if (preset === undefined || !presets.includes(preset)) {
      throw new UsageError(`--preset must be one of ${presets.join(', ')} (released weights: ape-ti, ape-d), got ${preset === undefined ? 'nothing' : `'${preset}'`}`);
    }
    if (!values.out) throw new UsageError('--out is required');
    const out = values.out;

    // No tensor math happens here; the cpu backend is enough to describe the model.
    await initEngine({ backend: 'cpu' });
    const config = APE_PRESETS[preset]();
    const expected = presetParameterShapes(config);
    const ckpt = await TorchCheckpoint.open(checkpoint);
    try {
      const { entries, report } = planConversion(ckpt, { targets: (key, info) => releasedTargets(key, info.shape.length), expected });
      printReport(report, values['list-used']);
      if (report.missing.length && !values['allow-missing']) {
        throw new ConversionError(`${missingMessage(checkpoint, report.missing)} (--allow-missing writes the rest)`);
      }
      await mkdir(out, { recursive: true });
      let progress: Progress | null = null;
      const bytes = await writeConversion(ckpt, entries, join(out, WEIGHTS_FILE), {
        metadata: { format: 'ape', config: config.name, source: basename(checkpoint) },
        onTensor: (done, total, name) => {
          progress ??= new Progress({ total, label: 'convert', unit: 'tensors' });
          progress.tick(1, name);
          if (done === total) progress.finish('');
        },
      });
      await writeJsonFile(join(out, CONFIG_FILE), modelConfigFile(config), 2);
      await writeJsonFile(join(out, 'conversion.json'), { source: checkpoint, preset, ...report, bytes }, 2);
      console.log(`wrote ${join(out, WEIGHTS_FILE)} (${(bytes / 1024 / 1024).toFixed(1)} MB), ${CONFIG_FILE}, conversion.json`);
      const tokenizer = config.text.tokenizer;
      if (tokenizer.kind === 'clip-bpe') {
        const target = join(out, basename(tokenizer.vocabFile));
        if (values.vocab) {
          await copyFile(values.vocab, target);
          console.log(`copied ${values.vocab} to ${target}`);
        } else {
          console.log(`note: the model folder also needs the CLIP merges file at ${target} (--vocab copies it; or pass vocabPath to loadModel)`);
        }
      } else {
        console.log(`note: the '${preset}' preset's word tokenizer is not in a torch checkpoint; put its tokenizer.json in ${out}`);
      }
    } finally {
      await ckpt.close();
    }
    return 0;
  },
};
