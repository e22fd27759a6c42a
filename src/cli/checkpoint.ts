import { parseCommandArgs } from './args.js';
import type { Command } from './command.js';
import { UsageError } from './command.js';
import { compactCheckpoint } from '../training/compact-checkpoint.js';
import { writeHalfModel } from '../inference/half-model.js';

const usage = `usage: ape checkpoint compact --from PATH --out DIR
       ape checkpoint half --from MODEL --out DIR

compact: rewrites a training checkpoint (ape train / ape pretrain) with its AdamW moments in 8-bit
  codes (checkpoint.format "compact"; weights stay float32): about half the file, so that a resume
  checkpoint fits a repository commit. PATH is a checkpoint file or a checkpoints folder (its
  newest usable file; a damaged newer one is passed over, saying so). Writes DIR/step-N.safetensors
  and never overwrites; put it in a run's checkpoints folder to resume from it (both formats load).
half: copies a model folder (config.json, model.safetensors, tokenizer, MODEL_CARD.md) with its
  weights stored in IEEE half precision, half the size; every loader reads them back as float32.
  Export and prompt caches are not copied. Prints the largest rounding error; refuses a weight
  outside half's range and never overwrites a model in DIR.
    --from PATH   compact: the full checkpoint, or the folder that holds it; half: the model folder
    --out DIR     the folder to write into`;

const ACTIONS = ['compact', 'half'] as const;

export const command: Command = {
  name: 'checkpoint',
  summary: 'convert checkpoints: compact training checkpoints (8-bit moments), half-precision model folders',
  usage,
  async run(argv: string[]): Promise<number> {
    const [what, ...rest] = argv;
    if (what === undefined || !(ACTIONS as readonly string[]).includes(what))
      throw new UsageError(
        what === undefined
          ? `which action? ${ACTIONS.join(' or ')}`
          : `unknown action '${what}' (one of: ${ACTIONS.join(', ')})`,
      );
    const { values, positionals } = parseCommandArgs({
      args: rest,
      options: { from: { type: 'string' }, out: { type: 'string' } },
      allowPositionals: true,
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (!values.from) throw new UsageError('--from is required');
    if (!values.out) throw new UsageError('--out is required');
    const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
    if (what === 'half') {
      const result = await writeHalfModel(values.from, values.out);
      console.log(
        `wrote ${result.path}: ${result.tensors} tensors in half precision, ${mb(result.bytesAfter)} from ${mb(result.bytesBefore)}; largest rounding error ${result.worstRelativeError.error.toExponential(2)} of the tensor's largest magnitude ('${result.worstRelativeError.tensor}'), ${result.flushedToZero} nonzero weights became 0`,
      );
      return 0;
    }
    const result = await compactCheckpoint(values.from, values.out, (line) => console.error(line));
    console.log(
      `wrote ${result.path} (step ${result.step}): ${mb(result.bytesAfter)}, from ${mb(result.bytesBefore)} (${result.from}); update direction m/sqrt(v) within ${(100 * result.directionError).toFixed(2)}% (relative L2)`,
    );
    return 0;
  },
};
