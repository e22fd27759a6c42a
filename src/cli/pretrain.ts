import { runCommandArgs, withStopOnSigint } from './args.js';
import { initEngine } from '../engine/engine.js';
import { loadPretrainConfig } from '../training/pretrain/config.js';
import { Pretrainer } from '../training/pretrain/pretrainer.js';
import { openProbeFolder, shapeProbe } from '../training/pretrain/shape-probe.js';
import { runTraining } from '../training/run.js';
import { writeMissingSynthFolders } from '../data/synth/prepare.js';
import type { Command } from './command.js';

const usage = `usage: ape pretrain --config FILE [--steps N] [--backend wasm|cpu]
  Pretrains the backbone and text tower of the model the config describes on proxy tasks (dense
  segmentation, naming objects from pooled features; docs/training.md): progress bar, checkpoints
  in OUTPUT/checkpoints, resumable like ape train. OUTPUT/weights/ holds the newest backbone and
  text weights, for a detector config's initFrom. Every eval.every steps a ridge probe measures
  the shape accuracy of pooled backbone features on eval.data (and, with pretrain.stemCrops, how
  many of its thing objects the stem-crop head names right from crops).
  With pretrain.stemCrops the run begins with that many steps on object crops (stem and text
  tower only) and ends at step stemCrops.steps + steps.
  --steps N   stop after N more steps in this session (the config's steps still bound the run)
              0: take no step, write OUTPUT/weights again from the newest checkpoint`;

export const command: Command = {
  name: 'pretrain',
  summary: 'pretrain a backbone and text tower for a detector run (proxy tasks; checkpoints, resumable)',
  usage,
  async run(argv: string[]): Promise<number> {
    const { config: file, maxSteps, backend } = runCommandArgs(argv);
    const config = loadPretrainConfig(file);
    await writeMissingSynthFolders(config.prepare.synth, (line) => console.error(line));
    await initEngine({ backend });
    await withStopOnSigint(async (signal) => {
      const run = await runTraining(config, {
        maxSteps,
        signal,
        open: (log) => Pretrainer.create(config, log),
        evaluate: async (run, settings) => ({
          ...(await shapeProbe(run.network, settings.data, {
            images: settings.images,
            level: config.pretrain.objectLevel,
          })),
          ...(run.cropStage
            ? { crops: await run.cropStage.accuracy(openProbeFolder(settings.data), settings.images ?? 16) }
            : {}),
        }),
      });
      run.dispose();
    });
    return 0;
  },
};
