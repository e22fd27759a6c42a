import { readGrayPng, readImage } from '../../io/image-node.js';
import { maskToBox } from '../../structures/bitmap.js';
import { splitComponents } from '../../structures/components.js';
import { decodeRle } from '../../structures/rle.js';
import { toRle, type Segmentation as StructSegmentation } from '../../structures/segmentation.js';
import type { Rng } from '../../util/random.js';
import type { TrainingDataset } from '../dataset.js';
import type { Sample, SampleInstance } from '../sample.js';
import type { AnnotationRecord, ImageRecord } from '../types.js';
import { federatedPromptWeights } from './federated.js';
import { selectGroundingPhrases } from './grounding-sample.js';
import { getOrThrow, required } from '../../util/checked.js';

export interface LoadOptions {
  /** Split stuff masks (and semantic-label regions) into connected components, one instance each. */
  splitStuff: boolean;
  /** Components smaller than this share of the image are dropped. */
  minComponentFraction: number;
  /** Image-centric grounding: NMS IoU between referred boxes and the most phrases per sample. */
  groundingNmsIou: number;
  maxPrompts: number;
  /** Class-agnostic sets: at most this many segments per sample (a random subset). */
  maxSegments: number;
  /** Train the federated loss: per-image prompt subsets (and LVIS negative/not-exhaustive fields). */
  federated: boolean;
  /** Federated sets: prompts trained per image. */
  federatedSampleCats: number;
  /** Semantic label values that mean "not labelled". */
  ignoreLabels: number[];
}

export const DEFAULT_LOAD_OPTIONS: LoadOptions = {
  splitStuff: true,
  minComponentFraction: 0.0005,
  groundingNmsIou: 0.6,
  maxPrompts: 128,
  maxSegments: 100,
  federated: false,
  federatedSampleCats: 50,
  ignoreLabels: [255],
};

/**
 * One image of a dataset as a sample at its original size: image pixels, objects with boxes and
 * masks, and the prompts they answer to. Random choices (grounding NMS scores, federated subsets,
 * segment subsets) come from `rng` so a seed fixes the sample.
 */
export async function loadSample(
  dataset: TrainingDataset,
  index: number,
  rng: Rng,
  options: LoadOptions = DEFAULT_LOAD_OPTIONS,
): Promise<Sample> {
  const record = dataset.image(index);
  const image = await readImage(record.file);
  if (image.width !== record.width || image.height !== record.height) {
    throw new Error(
      `${record.file}: image is ${image.width}x${image.height}, ${dataset.records.source} says ${record.width}x${record.height}`,
    );
  }
  const base = { image, source: dataset.name, imageId: record.id };
  const minArea = Math.max(1, Math.round(options.minComponentFraction * record.width * record.height));
  switch (dataset.kind) {
    case 'detection': {
      const instances: SampleInstance[] = [];
      for (const a of record.annotations) {
        if (a.isCrowd) continue;
        const label = getOrThrow(dataset.categoryIndex, a.categoryId, `${dataset.records.source}: category ids`);
        const mask = a.segmentation ? decodeSegmentation(a, record) : undefined;
        if (mask && options.splitStuff && !dataset.isThing[label]) {
          for (const part of splitComponents(mask, record.height, record.width, { minArea }))
            instances.push({ box: maskToBox(part, record.height, record.width), mask: part, label });
        } else {
          instances.push(mask ? { box: a.box, mask, label } : { box: a.box, label });
        }
      }
      const sample: Sample = {
        ...base,
        instances,
        prompts: dataset.prompts,
        promptKind: 'vocabulary',
        hasMasks: allHaveMasks(instances),
      };
      if (options.federated) addFederated(sample, dataset, record, rng, options);
      return sample;
    }
    case 'semantic':
      return {
        ...base,
        ...(await semanticInstances(dataset, record, options, minArea)),
        prompts: dataset.prompts,
        promptKind: 'vocabulary',
      };
    case 'grounding': {
      const selection = selectGroundingPhrases(record.annotations, rng, {
        nmsIou: options.groundingNmsIou,
        maxPrompts: options.maxPrompts,
      });
      const masks = new Map<number, Uint8Array | undefined>();
      const instances = selection.pairs.map(({ annotation, prompt }): SampleInstance => {
        const a = record.annotations[annotation]!;
        if (!masks.has(annotation)) masks.set(annotation, a.segmentation ? decodeSegmentation(a, record) : undefined);
        const mask = masks.get(annotation);
        return mask ? { box: a.box, mask, label: prompt } : { box: a.box, label: prompt };
      });
      return {
        ...base,
        instances,
        prompts: selection.prompts,
        promptKind: 'sentence',
        hasMasks: allHaveMasks(instances),
      };
    }
    case 'class-agnostic': {
      let annotations = record.annotations.filter((a) => !a.isCrowd);
      if (annotations.length > options.maxSegments)
        annotations = rng.shuffle(annotations.slice()).slice(0, options.maxSegments);
      const instances = annotations.map((a): SampleInstance => {
        const mask = a.segmentation ? decodeSegmentation(a, record) : undefined;
        return mask
          ? { box: maskToBox(mask, record.height, record.width), mask, label: -1 }
          : { box: a.box, label: -1 };
      });
      return { ...base, instances, prompts: [], promptKind: 'vocabulary', hasMasks: allHaveMasks(instances) };
    }
  }
}

/** An annotation's segmentation as a bitmap of its image's size (errors name the image and annotation). */
export function decodeSegmentation(a: AnnotationRecord, record: ImageRecord): Uint8Array {
  try {
    return decodeRle(toRle(a.segmentation as StructSegmentation, record.height, record.width));
  } catch (err) {
    throw new Error(`image ${record.id} annotation ${a.id}: ${(err as Error).message}`);
  }
}

function allHaveMasks(instances: SampleInstance[]): boolean {
  return instances.length > 0 && instances.every((i) => i.mask !== undefined);
}

function addFederated(
  sample: Sample,
  dataset: TrainingDataset,
  record: ImageRecord,
  rng: Rng,
  options: LoadOptions,
): void {
  const index = (ids: number[] | undefined) =>
    (ids ?? []).map((id) => getOrThrow(dataset.categoryIndex, id, `${dataset.records.source}: category ids`));
  const present = new Set(sample.instances.map((i) => i.label));
  sample.promptWeights = federatedPromptWeights(
    present,
    index(record.negCategoryIds),
    dataset.federatedWeights,
    { numSampleCats: options.federatedSampleCats },
    rng,
  );
  const notExhaustive = index(record.notExhaustiveCategoryIds);
  if (notExhaustive.length) sample.positiveOnlyPrompts = notExhaustive;
}

/** Every labelled region of a semantic label map, split into connected components. */
async function semanticInstances(
  dataset: TrainingDataset,
  record: ImageRecord,
  options: LoadOptions,
  minArea: number,
): Promise<{ instances: SampleInstance[]; hasMasks: boolean }> {
  const file = required(record.semanticFile, `${record.file}: the semantic label map`);
  const labels = await readGrayPng(file);
  if (labels.width !== record.width || labels.height !== record.height) {
    throw new Error(
      `${file}: label map is ${labels.width}x${labels.height}, the image ${record.width}x${record.height}`,
    );
  }
  const { width: w, height: h } = labels;
  const ignore = new Set(dataset.records.ignoreLabels ?? options.ignoreLabels);
  const masks = new Map<number, Uint8Array>();
  for (let i = 0; i < w * h; i++) {
    const v = labels.data[i]!;
    if (ignore.has(v)) continue;
    let mask = masks.get(v);
    if (!mask) {
      if (!dataset.categoryIndex.has(v))
        throw new Error(
          `${file}: pixel ${i % w},${Math.floor(i / w)} has label ${v}, which is no category id (and not ignored)`,
        );
      mask = new Uint8Array(w * h);
      masks.set(v, mask);
    }
    mask[i] = 1;
  }
  const instances: SampleInstance[] = [];
  for (const [value, mask] of [...masks].sort((a, b) => a[0] - b[0])) {
    const label = getOrThrow(dataset.categoryIndex, value, `${file}: category ids`);
    const parts = options.splitStuff ? splitComponents(mask, h, w, { minArea }) : [mask];
    for (const part of parts) instances.push({ box: maskToBox(part, h, w), mask: part, label });
  }
  return { instances, hasMasks: true };
}
