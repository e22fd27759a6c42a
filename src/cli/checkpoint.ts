import { parseCommandArgs } from './args.js';
import type { Command } from './command.js';
import { UsageError } from './command.js';
import { compactCheckpoint } from '../training/compact-checkpoint.js';

const usage = `usage: ape checkpoint compact --from PATH --out DIR
  Rewrites a training checkpoint (ape train / ape pretrain) with its AdamW moments in 8-bit codes
  (checkpoint.format "compact"; weights stay float32): about half the file, so that a resume
  checkpoint fits a repository commit. PATH is a checkpoint file or a checkpoints folder (its
  newest usable file; a damaged newer one is passed over, saying so). Writes DIR/step-N.safetensors
  and never overwrites; put it in a run's checkpoints folder to resume from it (both formats load).
    --from PATH   the full checkpoint, or the folder that holds it
    --out DIR     the folder to write into`;

export const command: Command = {
  name: 'checkpoint',
  summary: 'convert a training checkpoint to the compact format (8-bit optimizer moments)',
  usage,
  async run(argv: string[]): Promise<number> {
    const [what, ...rest] = argv;
    if (what !== 'compact')
      throw new UsageError(what === undefined ? 'which action? compact' : `unknown action '${what}' (one: compact)`);
    const { values, positionals } = parseCommandArgs({
      args: rest,
      options: { from: { type: 'string' }, out: { type: 'string' } },
      allowPositionals: true,
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (!values.from) throw new UsageError('--from is required');
    if (!values.out) throw new UsageError('--out is required');
    const result = await compactCheckpoint(values.from, values.out, (line) => console.error(line));
    const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
    console.log(
      `wrote ${result.path} (step ${result.step}): ${mb(result.bytesAfter)}, from ${mb(result.bytesBefore)} (${result.from}); update direction m/sqrt(v) within ${(100 * result.directionError).toFixed(2)}% (relative L2)`,
    );
    return 0;
  },
};
