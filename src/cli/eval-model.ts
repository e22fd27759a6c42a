import { initEngine } from '../engine/engine.js';
import { evaluateModel, type CategoryEvalResult } from '../evaluation/model-eval.js';
import { loadModel } from '../inference/model-files.js';
import { resolveModelOption, sizeOption } from './model-option.js';
import { Progress } from '../util/progress.js';
import { writeJsonFile } from '../util/write-json.js';
import { backendOption, parseCommandArgs, positiveIntegerOption } from './args.js';
import type { Command } from './command.js';
import { UsageError } from './command.js';
import { engineOption } from './engine-option.js';
import { encodePromptsWithProgress } from './encode-prompts.js';

const usage = `usage: ape eval model --model DIR|NAME --data DIR [--images N] [--size N] [--engine ort|tfjs] [--json OUT.json]
  --size N      input size in pixels instead of the model's (a multiple of 64; see ape predict --size)
  --engine E    ort (default: ONNX Runtime; the network is exported on first use for each image
                shape and prompt count, cached in MODEL/onnx) or tfjs (TF.js on wasm, the reference)
  Prints a table per category (box AP, mask AP, semantic IoU), the totals, and the JSON
  {"bbox": [12], "segm": [12], "miou": x, "referring_acc": x, "per_category": [...]}`;

const pct = (x: number | null) => (x === null || x < 0 || Number.isNaN(x) ? 'n/a' : (100 * x).toFixed(1));

/** One line per category: box AP, mask AP (things) and semantic IoU, in percent; n/a where undefined. */
export function categoryTable(rows: readonly CategoryEvalResult[]): string {
  const width = Math.max(8, ...rows.map((r) => r.name.length));
  const cell = (x: number | null) => pct(x).padStart(7);
  const head = `${'category'.padEnd(width)}  kind   ${'box AP'.padStart(7)}${'mask AP'.padStart(8)}${'IoU'.padStart(7)}`;
  const lines = rows.map(
    (r) =>
      `${r.name.padEnd(width)}  ${r.isThing ? 'thing' : 'stuff'}  ${cell(r.boxAp)} ${cell(r.maskAp)}${cell(r.iou)}`,
  );
  return [head, ...lines].join('\n');
}

export const command: Command = {
  name: 'eval model',
  summary: 'box/mask AP, mIoU and referring accuracy of a model on a dataset folder',
  usage,
  async run(argv: string[]): Promise<number> {
    const { values } = parseCommandArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        data: { type: 'string' },
        images: { type: 'string' },
        json: { type: 'string' },
        backend: { type: 'string' },
        size: { type: 'string' },
        engine: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    });
    if (!values.model) throw new UsageError('--model is required');
    if (!values.data) throw new UsageError('--data is required');
    const maxImages = positiveIntegerOption(values.images, 'images');
    const backend = backendOption(values.backend);
    const inputSize = sizeOption(values.size);
    const engine = engineOption(values.engine);
    await initEngine({ backend });
    const model = await loadModel(await resolveModelOption(values.model), {
      engine,
      ort: { onExport: (message) => console.error(`ape eval model: ${message}`) },
      ...(inputSize !== undefined ? { inputSize } : {}),
    });
    let progress: Progress | undefined;
    const result = await evaluateModel(model, values.data, {
      maxImages,
      prepareVocabulary: (names) => encodePromptsWithProgress(model, names, 'ape eval model: encoding prompts'),
      onImage: (done, total) => {
        progress ??= new Progress({ total, label: 'eval', unit: 'img' });
        progress.tick();
        if (done === total) progress.finish();
      },
    });
    const per_category = result.perCategory.map((c) => ({
      id: c.id,
      name: c.name,
      isthing: c.isThing ? 1 : 0,
      box_ap: c.boxAp,
      mask_ap: c.maskAp,
      iou: c.iou,
    }));
    const json = {
      bbox: result.bbox,
      segm: result.segm,
      miou: result.miou,
      referring_acc: result.referring_acc,
      per_category,
    };
    console.log(categoryTable(result.perCategory));
    console.log(
      `images ${result.images}  box AP ${pct(result.bbox[0]!)}  mask AP ${pct(result.segm[0]!)}  mIoU ${pct(result.miou)}  referring P@0.5 ${pct(result.referring_acc)}`,
    );
    console.log(JSON.stringify(json));
    if (values.json) await writeJsonFile(values.json, json);
    model.dispose();
    return 0;
  },
};
