import { pullModel } from '../inference/model-hub.js';
import { RELEASED_MODELS } from '../inference/released-models.js';
import { parseCommandArgs } from './args.js';
import { UsageError, type Command } from './command.js';
import { pullProgress, supportedNames } from './model-option.js';

const usage = `usage: ape pull NAME [--keep-checkpoint] [--force]
       ape pull --list
  Downloads a released APE model from the Hugging Face hub (${RELEASED_MODELS[0]!.hub.repo}), checks its
  size and sha256, converts it (as 'ape convert' does) and keeps the converted folder in
  $APE_HOME/models/NAME (APE_HOME defaults to ~/.cache/ape). An interrupted download resumes on the
  next run. HF_ENDPOINT (a mirror) and HF_TOKEN are respected. --model NAME pulls the same way.
    NAME               ${supportedNames()}
    --keep-checkpoint  keep the downloaded model_final.pth in $APE_HOME/downloads/NAME
    --force            download and convert again although the folder is there
    --list             the released models: names, presets, APE configs, what is not supported yet`;

function listing(): string {
  return RELEASED_MODELS.map((m) =>
    [
      `${m.name.padEnd(8)} ${m.title.padEnd(8)} ${m.preset ? `preset ${m.preset}` : 'not supported yet'}: ${m.summary}`,
      `         APE config ${m.apeConfig}`,
      `         weights    ${m.hub.repo}/${m.hub.path}`,
      ...(m.unsupported ? [`         why not    ${m.unsupported}`] : []),
    ].join('\n'),
  ).join('\n');
}

export const command: Command = {
  name: 'pull',
  summary: 'download and convert a released APE model by name (ape-ti, ape-l-d)',
  usage,
  async run(argv: string[]): Promise<number> {
    const { values, positionals } = parseCommandArgs({
      args: argv,
      options: {
        'keep-checkpoint': { type: 'boolean', default: false },
        force: { type: 'boolean', default: false },
        list: { type: 'boolean', default: false },
      },
      allowPositionals: true,
    });
    if (values.list) {
      console.log(listing());
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(`give one model name (${supportedNames()})`);
    const r = await pullModel(positionals[0]!, {
      ...pullProgress(),
      keepCheckpoint: values['keep-checkpoint'],
      force: values.force,
    });
    console.log(
      r.pulled
        ? `ape pull: ${positionals[0]} is ready in ${r.dir}${r.checkpoint ? ` (checkpoint kept: ${r.checkpoint})` : ''}`
        : `ape pull: ${positionals[0]} is already in ${r.dir} (--force pulls it again)`,
    );
    return 0;
  },
};
