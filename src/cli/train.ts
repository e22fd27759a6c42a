import { backendOption, parseCommandArgs, stepsOption, withStopOnSigint } from './args.js';
import { initEngine } from '../engine/engine.js';
import { loadTrainConfig } from '../training/config.js';
import { runTraining } from '../training/run.js';
import { writeMissingSynthFolders } from '../data/synth/prepare.js';
import { evaluateModel } from '../evaluation/model-eval.js';
import { UsageError, type Command } from './command.js';

const usage = `usage: ape train --config FILE [--steps N] [--backend wasm|cpu] [--restart]
  Trains (or resumes) the run the config describes (see docs/training.md): progress bar with
  loss terms, steps/s and ETA; checkpoints every checkpoint.every steps into OUTPUT/checkpoints.
  Running the same command again continues from the newest checkpoint. Ctrl-C stops cleanly
  after the current step, writing a checkpoint.
  A damaged newest checkpoint (failed read or checksum) is skipped for the previous one, saying
  so; when none can be read, or OUTPUT/model exists without checkpoints, it refuses (exit 1).
  --steps N   stop after N more steps in this session (the config's steps still bound the run)
              0: take no step, write OUTPUT/model again from the newest checkpoint
  --restart   start a new run: OUTPUT/checkpoints and OUTPUT/model are renamed aside, not deleted`;

export const command: Command = {
  name: 'train',
  summary: 'train or resume a model from a JSON config (checkpoints, progress, resumable)',
  usage,
  async run(argv: string[]): Promise<number> {
    const { values, positionals } = parseCommandArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        steps: { type: 'string' },
        backend: { type: 'string' },
        restart: { type: 'boolean' },
      },
      allowPositionals: true,
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (!values.config) throw new UsageError('--config is required');
    const maxSteps = stepsOption(values.steps);
    const backend = backendOption(values.backend);
    const config = loadTrainConfig(values.config);
    await writeMissingSynthFolders(config.prepare.synth, (line) => console.error(line));
    await initEngine({ backend });
    await withStopOnSigint(async (signal) => {
      const trainer = await runTraining(config, {
        maxSteps,
        signal,
        restart: values.restart === true,
        evaluate: async (trainer, settings) => {
          const r = await evaluateModel(trainer.network, settings.data, { maxImages: settings.images });
          return {
            boxAP: r.bbox[0],
            maskAP: r.segm[0],
            miou: r.miou,
            referring_acc: r.referring_acc,
            images: r.images,
          };
        },
      });
      await trainer.close();
    });
    return 0;
  },
};
