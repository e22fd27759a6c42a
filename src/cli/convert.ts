import { join } from 'node:path';
import { initEngine } from '../engine/engine.js';
import type { ConversionReport } from '../convert/convert-checkpoint.js';
import { convertCheckpointToFolder } from '../inference/convert-released.js';
import { CONFIG_FILE, WEIGHTS_FILE } from '../inference/model-files.js';
import { tokenizerFileName } from '../inference/model-folder.js';
import { APE_PRESETS, type ApePresetName } from '../modeling/config.js';
import { Progress } from '../util/progress.js';
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
    --vocab PATH       CLIP BPE merges file to copy into DIR (default: the one bundled with ape)
    --allow-missing    write the file even when some model parameters are not in the checkpoint
                       (loadModel will refuse such a folder; it is for inspection)
    --list-used        print every used key with its parameter name and layout change`;

export { presetParameterShapes } from '../inference/convert-released.js';

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
  console.log(
    `used ${used.length} checkpoint tensor(s) -> ${new Set(used.map((e) => e.name)).size} parameter(s): ${groupCounts(used.map((e) => e.key))}`,
  );
  if (listUsed)
    for (const e of used)
      console.log(
        `  ${e.key} -> ${e.name} [${e.shape.join(', ')}] ${e.layout}${e.part ? ` part ${e.part.index + 1}/${e.part.of}` : ''}${e.sourceDtype !== 'F32' ? ` from ${e.sourceDtype}` : ''}`,
      );
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
      throw new UsageError(
        `--preset must be one of ${presets.join(', ')} (released weights: ape-ti, ape-d), got ${preset === undefined ? 'nothing' : `'${preset}'`}`,
      );
    }
    if (!values.out) throw new UsageError('--out is required');
    const out = values.out;

    // No tensor math happens here; the cpu backend is enough to describe the model.
    await initEngine({ backend: 'cpu' });
    const config = APE_PRESETS[preset]();
    let progress: Progress | null = null;
    const report = await convertCheckpointToFolder(checkpoint, config, out, {
      allowMissing: values['allow-missing'],
      ...(values.vocab ? { vocabPath: values.vocab } : {}),
      onPlan: (plan) => printReport(plan, values['list-used']),
      onTensor: (done, total, name) => {
        progress ??= new Progress({ total, label: 'convert', unit: 'tensors' });
        progress.tick(1, name);
        if (done === total) progress.finish('');
      },
    });
    const vocabNote =
      config.text.tokenizer.kind === 'clip-bpe'
        ? `, ${tokenizerFileName(config)} (${values.vocab ? `from ${values.vocab}` : 'the bundled CLIP vocabulary'})`
        : '';
    console.log(
      `wrote ${join(out, WEIGHTS_FILE)} (${(report.bytes / 1024 / 1024).toFixed(1)} MB), ${CONFIG_FILE}, conversion.json${vocabNote}`,
    );
    if (config.text.tokenizer.kind === 'word') {
      console.log(
        `note: the '${preset}' preset's word tokenizer is not in a torch checkpoint; put its tokenizer.json in ${out}`,
      );
    }
    return 0;
  },
};
