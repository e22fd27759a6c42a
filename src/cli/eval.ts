import type { Command } from './command.js';
import { UsageError } from './command.js';

/**
 * `ape eval <what>`: one entry per kind of evaluation, each loaded only when asked for. Adding a
 * kind is one more entry here and its own file.
 */
const evaluations: Record<string, { usage: string; load: () => Promise<Command> }> = {
  coco: {
    usage: `ape eval coco --gt GT.json --results RES.json --type bbox|segm [--json OUT.json]
    COCO box or mask AP of detections against COCO ground truth, exactly as pycocotools COCOeval;
    prints the standard 12-line summary.
      --gt PATH        ground truth: COCO instances JSON (images, annotations, categories)
      --results PATH   detections: JSON array of {image_id, category_id, score, bbox | segmentation}
      --type T         bbox (box IoU) or segm (mask IoU)
      --json PATH      also write {"type": T, "stats": [12 numbers]} to PATH`,
    load: async () => (await import('./eval-coco.js')).command,
  },
  model: {
    usage: `ape eval model --model DIR|NAME --data DIR [--images N] [--json OUT.json]
    A model folder on a dataset folder (synthetic-world layout): box and mask AP over thing
    categories, semantic mIoU, referring top-1 box precision at IoU 0.5; prints a table per
    category and writes {"bbox": [12], "segm": [12], "miou": x, "referring_acc": x,
    "per_category": [{"id", "name", "isthing", "box_ap", "mask_ap", "iou"}]} (null: undefined)`,
    load: async () => (await import('./eval-model.js')).command,
  },
};

const usage = `usage:\n${Object.values(evaluations)
  .map((e) => `  ${e.usage}`)
  .join('\n\n')}`;

export const command: Command = {
  name: 'eval',
  summary: 'evaluate results against ground truth (COCO AP, ...)',
  usage,
  async run(argv: string[]): Promise<number> {
    const [what, ...rest] = argv;
    if (what === undefined) throw new UsageError(`which evaluation? one of: ${Object.keys(evaluations).join(', ')}`);
    const entry = evaluations[what];
    if (!entry) throw new UsageError(`unknown evaluation '${what}' (one of: ${Object.keys(evaluations).join(', ')})`);
    return (await entry.load()).run(rest);
  },
};
