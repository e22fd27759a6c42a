import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readGrayPng, readImage } from '../io/image-node.js';
import type { ApeModel, PostprocessSettings } from '../inference/ape-model.js';
import { xyxyToXywh } from '../structures/boxes.js';
import { evaluateCoco } from './coco/evaluate.js';
import { parseCocoGroundTruth, parseCocoResults } from './coco/parse.js';
import { ReferringEvaluator } from './referring.js';
import { SemanticEvaluator } from './semantic.js';

export interface ModelEvalOptions {
  /** Evaluate the first N images only (default all). */
  maxImages?: number;
  /** Called after each image with (done, total). */
  onImage?: (done: number, total: number) => void;
  /** Which metrics to compute (default all); a skipped one reports -1 stats or NaN. */
  metrics?: ReadonlyArray<'instances' | 'semantic' | 'referring'>;
  /** Inference settings instead of the model config's (to tune them on a validation split). */
  settings?: PostprocessSettings;
  /**
   * Called once with the category names before the first image (when instances or semantic are
   * evaluated): `ape eval model` encodes a new vocabulary there with a progress display.
   */
  prepareVocabulary?: (names: readonly string[]) => Promise<void>;
}

/** What evaluation needs of a model (ApeModel; tests give a stand-in). */
export type EvaluatedModel = Pick<ApeModel, 'predict' | 'predictVariantsOnEngine'>;

/** The numbers of `ape eval model`: COCO box and mask stats (12 each), semantic mIoU, referring P@0.5. */
export interface ModelEvalResult {
  bbox: number[];
  segm: number[];
  miou: number;
  referring_acc: number;
  images: number;
  /** Per category of instances.json, in its order: where the totals come from. */
  perCategory: CategoryEvalResult[];
}

/** One category's share of ModelEvalResult; null where a number is undefined (no ground truth, a skipped metric, stuff for AP). */
export interface CategoryEvalResult {
  id: number;
  name: string;
  isThing: boolean;
  /** COCO AP@[.50:.95] of boxes (things only). */
  boxAp: number | null;
  /** COCO AP@[.50:.95] of masks (things only). */
  maskAp: number | null;
  /** IoU of the category in the semantic map (things and stuff). */
  iou: number | null;
}

interface RawCategory {
  id: number;
  name: string;
  isthing?: number | boolean;
}

function definedOrNull(x: number | undefined): number | null {
  return x === undefined || Number.isNaN(x) ? null : x;
}

/**
 * Evaluates a model on a dataset folder in the synthetic world's layout (instances.json,
 * semantic.json with semantic/*.png, grounding.json, images/): box and mask AP over the thing
 * categories (every category name is prompted, things and stuff), mIoU of the semantic map over
 * all categories (a pixel the background channel wins counts as wrong), and the share of
 * sentences whose top box has IoU > 0.5 with its object. Missing files skip their metric (NaN,
 * or -1 stats for AP).
 */
export async function evaluateModel(
  model: EvaluatedModel,
  dataDir: string,
  options: ModelEvalOptions = {},
): Promise<ModelEvalResult> {
  return (await evaluateModelVariants(model, dataDir, options, [options.settings ?? {}]))[0]!;
}

/**
 * evaluateModel once per variant of the post-processing settings, running the network once per
 * image (`predictVariantsOnEngine`: on the engine the model was loaded with); result v is the
 * evaluation under variants[v] (`options.settings` is ignored). Referring precision does not
 * depend on these settings and is the same in every result.
 */
export async function evaluateModelVariants(
  model: EvaluatedModel,
  dataDir: string,
  options: Omit<ModelEvalOptions, 'settings'>,
  variants: PostprocessSettings[],
): Promise<ModelEvalResult[]> {
  const readJson = (name: string): unknown | null => {
    try {
      return JSON.parse(readFileSync(join(dataDir, name), 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new Error(`${join(dataDir, name)}: ${(err as Error).message}`);
    }
  };
  const instancesJson = readJson('instances.json') as { categories?: RawCategory[] } | null;
  if (!instancesJson) throw new Error(`${dataDir}: no instances.json (the categories and images to evaluate)`);
  const gt = parseCocoGroundTruth(instancesJson, join(dataDir, 'instances.json'));
  const rawCategories = instancesJson.categories ?? [];
  const thingIds = rawCategories
    .filter((c) => c.isthing === undefined || c.isthing === 1 || c.isthing === true)
    .map((c) => c.id);
  const names = gt.categories.map((c) => c.name);
  const idOfPrompt = gt.categories.map((c) => c.id);
  const images = gt.images.slice(0, options.maxImages ?? gt.images.length);

  const semanticIndex = readJson('semantic.json') as {
    ignore_label?: number | string;
    images?: Array<{ id: number; sem_seg_file_name: string }>;
  } | null;
  const semanticFiles = new Map((semanticIndex?.images ?? []).map((im) => [im.id, im.sem_seg_file_name]));
  const maxId = Math.max(...idOfPrompt, 0);
  // Class index = category id; one extra class (maxId + 1) for pixels the background channel wins.
  const semantic = variants.map(
    () => new SemanticEvaluator({ numClasses: maxId + 2, ignoreLabel: Number(semanticIndex?.ignore_label ?? 255) }),
  );

  const grounding = readJson('grounding.json') as {
    annotations?: Array<{
      image_id: number;
      bbox: number[];
      sentences?: Array<string | { sent?: string; raw?: string }>;
    }>;
  } | null;
  const sentencesByImage = new Map<number, Array<{ text: string; box: number[] }>>();
  for (const a of grounding?.annotations ?? []) {
    for (const s of a.sentences ?? []) {
      const text = typeof s === 'string' ? s : (s.sent ?? s.raw ?? '');
      if (!text.trim()) continue;
      const list = sentencesByImage.get(a.image_id) ?? [];
      list.push({ text: text.trim(), box: [a.bbox[0]!, a.bbox[1]!, a.bbox[0]! + a.bbox[2]!, a.bbox[1]! + a.bbox[3]!] });
      sentencesByImage.set(a.image_id, list);
    }
  }
  const referring = new ReferringEvaluator();

  const wanted = new Set(options.metrics ?? ['instances', 'semantic', 'referring']);
  const tasks = [
    ...(wanted.has('instances') ? (['instances'] as const) : []),
    ...(wanted.has('semantic') ? (['semantic'] as const) : []),
  ];
  const results: unknown[][] = variants.map(() => []);
  if (tasks.length > 0 && images.length > 0) await options.prepareVocabulary?.(names);
  let done = 0;
  for (const im of images) {
    const image = await readImage(join(dataDir, 'images', im.file_name ?? ''));
    const preds =
      tasks.length > 0
        ? await model.predictVariantsOnEngine(
            [image],
            { vocabulary: names, tasks, masks: wanted.has('instances') },
            variants,
          )
        : [];
    const semFile = semanticFiles.get(im.id);
    const gtLabels = semFile && preds.some((p) => p[0]!.semantic) ? await readGrayPng(join(dataDir, semFile)) : null;
    preds.forEach((perImage, v) => {
      const pred = perImage[0]!;
      for (const inst of pred.instances) {
        results[v]!.push({
          image_id: im.id,
          category_id: idOfPrompt[inst.promptIndex],
          score: inst.score,
          bbox: xyxyToXywh(inst.box),
          segmentation: inst.mask,
        });
      }
      if (gtLabels && semFile && pred.semantic) {
        const labels = pred.semantic.labels;
        const mapped = new Int32Array(labels.length);
        for (let i = 0; i < labels.length; i++) mapped[i] = labels[i]! < 0 ? maxId + 1 : idOfPrompt[labels[i]!]!;
        semantic[v]!.add(mapped, gtLabels.data, semFile);
      }
    });
    const refs = sentencesByImage.get(im.id);
    if (refs?.length && wanted.has('referring')) {
      const unique = [...new Set(refs.map((r) => r.text))];
      const g = await model.predict(image, { sentences: unique, tasks: ['grounding'], masks: false });
      const best = new Map(g.grounding.map((r) => [r.sentence, r.box]));
      for (const r of refs)
        referring.add({ predBox: best.get(r.text) ?? null, gtBox: r.box, id: `${im.id}:${r.text}` });
    }
    options.onImage?.(++done, images.length);
  }

  const imageIds = images.map((im) => im.id);
  const skipped = new Array<number>(12).fill(-1);
  const ref = referring.metrics();
  const referringAcc = ref.count > 0 ? ref.box.precision['0.5']! : NaN;
  return variants.map((_, v) => {
    const dets = parseCocoResults(results[v]!, gt, 'predictions');
    const box = wanted.has('instances') ? evaluateCoco(gt, dets, 'bbox', { imageIds, categoryIds: thingIds }) : null;
    const mask = wanted.has('instances') ? evaluateCoco(gt, dets, 'segm', { imageIds, categoryIds: thingIds }) : null;
    const sem = wanted.has('semantic') && semanticFiles.size > 0 ? semantic[v]!.metrics() : null;
    const apOf = (evaluation: typeof box, id: number) =>
      definedOrNull(evaluation?.perCategory.find((c) => c.categoryId === id)?.ap);
    const perCategory = gt.categories.map(
      ({ id, name }): CategoryEvalResult => ({
        id,
        name,
        isThing: thingIds.includes(id),
        boxAp: apOf(box, id),
        maskAp: apOf(mask, id),
        iou: definedOrNull(sem?.perClassIoU[id]),
      }),
    );
    return {
      bbox: box?.stats ?? skipped,
      segm: mask?.stats ?? skipped,
      miou: sem?.mIoU ?? NaN,
      referring_acc: referringAcc,
      images: images.length,
      perCategory,
    };
  });
}
