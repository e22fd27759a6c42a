import { backendOption, parseCommandArgs, positiveIntegerOption } from './args.js';
import { initEngine } from '../engine/engine.js';
import { loadTrainConfig } from '../training/config.js';
import { runTraining } from '../training/run.js';
import { writeMissingSynthFolders } from '../data/synth/prepare.js';
import { evaluateModel } from '../evaluation/model-eval.js';
import { UsageError, type Command } from './command.js';

const usage = `usage: ape train --config FILE [--steps N] [--backend wasm|cpu]
  Trains (or resumes) the run the config describes (see docs/training.md): progress bar with
  loss terms, steps/s and ETA; checkpoints every checkpoint.every steps into OUTPUT/checkpoints.
  Running the same command again continues from the newest checkpoint. Ctrl-C stops cleanly
  after the current step, writing a checkpoint.
  --steps N   stop after N more steps in this session (the config's steps still bound the run)`;

export const command: Command = {
  name: 'train',
  summary: 'train or resume a model from a JSON config (checkpoints, progress, resumable)',
  usage,
  async run(argv: string[]): Promise<number> {
    const { values, positionals } = parseCommandArgs({
      args: argv,
      options: { config: { type: 'string' }, steps: { type: 'string' }, backend: { type: 'string' } },
      allowPositionals: true,
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (!values.config) throw new UsageError('--config is required');
    const maxSteps = positiveIntegerOption(values.steps, 'steps');
    const backend = backendOption(values.backend);
    const config = loadTrainConfig(values.config);
    await writeMissingSynthFolders(config.prepare.synth, (line) => console.error(line));
    await initEngine({ backend });
    const signal = { stop: false };
    const onSigint = () => {
      if (signal.stop) process.exit(130);
      signal.stop = true;
      console.error('\nstopping after this step (Ctrl-C again to abort without a checkpoint)');
    };
    process.on('SIGINT', onSigint);
    try {
      const trainer = await runTraining(config, {
        maxSteps,
        signal,
        evaluate: async (trainer) => {
          const r = await evaluateModel(trainer.network, config.eval!.data, { maxImages: config.eval!.images });
          return { boxAP: r.bbox[0], maskAP: r.segm[0], miou: r.miou, referring_acc: r.referring_acc, images: r.images };
        },
      });
      await trainer.close();
    } finally {
      process.off('SIGINT', onSigint);
    }
    return 0;
  },
};
