import { BoundedReadError, readRegularFile } from '../io/bounded-file.js';
import { DEFAULT_MAX_JSON_BYTES } from '../data/readers/json-file.js';
import { evaluateCoco } from '../evaluation/coco/evaluate.js';
import { parseCocoGroundTruth, parseCocoResults } from '../evaluation/coco/parse.js';
import { writeJsonFile } from '../util/write-json.js';
import { parseCommandArgs } from './args.js';
import type { Command } from './command.js';
import { UsageError } from './command.js';

const usage = 'usage: ape eval coco --gt GT.json --results RES.json --type bbox|segm [--json OUT.json]';

async function readText(path: string, role: string): Promise<string> {
  try {
    return Buffer.from(await readRegularFile(path, DEFAULT_MAX_JSON_BYTES)).toString('utf8');
  } catch (err) {
    if (!(err instanceof BoundedReadError)) throw err;
    throw new Error(
      `cannot read ${role} file ${err.path}: ${err.reason === 'missing' ? err.detail.replace(/^cannot read \((.*)\)$/, '$1') : err.detail}`,
    );
  }
}

export const command: Command = {
  name: 'eval coco',
  summary: 'COCO box or mask AP',
  usage,
  async run(argv: string[]): Promise<number> {
    const { values } = parseCommandArgs({
      args: argv,
      options: {
        gt: { type: 'string' },
        results: { type: 'string' },
        type: { type: 'string' },
        json: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    });
    if (!values.gt) throw new UsageError('--gt is required');
    if (!values.results) throw new UsageError('--results is required');
    const type = values.type;
    if (type !== 'bbox' && type !== 'segm')
      throw new UsageError(`--type must be bbox or segm, got ${type === undefined ? 'nothing' : `'${type}'`}`);

    const gt = parseCocoGroundTruth(await readText(values.gt, 'ground-truth'), values.gt);
    const results = parseCocoResults(await readText(values.results, 'results'), gt, values.results);
    const evaluation = evaluateCoco(gt, results, type);
    console.log(evaluation.summary);
    if (values.json) await writeJsonFile(values.json, { type, stats: evaluation.stats });
    return 0;
  },
};
