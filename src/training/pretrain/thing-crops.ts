import type { TrainingDataset } from '../../data/dataset.js';
import { jitteredScale } from '../../data/mappers/augment.js';
import { decodeSegmentation } from '../../data/mappers/load-sample.js';
import { readImage } from '../../io/image-node.js';
import type { RgbImage } from '../../io/image-types.js';
import { getOrThrow } from '../../util/checked.js';
import { concatArrays } from '../../util/concat-arrays.js';
import { Rng } from '../../util/random.js';
import { mixSeed } from '../trainer.js';
import { cropPixels, cropRegion, placeCrop } from './object-crop.js';

/** A thing object of a dataset: its image and the index of its annotation in the image's record. */
export interface ThingObject {
  image: number;
  annotation: number;
}

/** A thing object with its crop's augmentation: the scale the image is shown at, the flip, the crop's offset. */
export interface CropPick extends ThingObject {
  scale: number;
  flip: boolean;
  /** Offset of the crop's centre from the box's, in pixels of the scaled image (placeCrop). */
  shift: [number, number];
}

/** Crops ready for the stem: normalised pixels, each object's region in its crop, its prompt. */
export interface CropBatch {
  /** [count, size, size, 3], normalised as the network normalises images. */
  pixels: Float32Array;
  /** Per crop, [size, size] of 0/1 (cropRegion). */
  regions: Uint8Array[];
  /** Index in the dataset's prompts. */
  labels: Int32Array;
  count: number;
  size: number;
}

/** The thing objects (crowd regions left out) of the dataset's first `images` images, by image. */
export function thingObjects(dataset: TrainingDataset, images = dataset.size): ThingObject[][] {
  return Array.from({ length: Math.min(images, dataset.size) }, (_, image) =>
    dataset.image(image).annotations.flatMap((a, annotation) => {
      if (a.isCrowd) return [];
      const label = getOrThrow(dataset.categoryIndex, a.categoryId, `${dataset.records.source}: category ids`);
      return dataset.isThing[label] ? [{ image, annotation }] : [];
    }),
  );
}

/**
 * The crop stage's walk over a dataset's thing objects: each epoch visits the images in a seeded
 * permutation (a function of the seed and the epoch) and takes all the things of each in turn,
 * so that one step's crops come from few images, each read once. Step t takes positions
 * [t * B, (t + 1) * B) of the walk: the walk is a function of the step and needs no state to resume.
 */
export class ThingCropWalk {
  private readonly perImage: ThingObject[][];
  /** Thing objects per epoch. */
  readonly total: number;
  private cached: { epoch: number; order: ThingObject[] } | null = null;

  constructor(
    readonly dataset: TrainingDataset,
    private readonly seed: number,
  ) {
    this.perImage = thingObjects(dataset);
    this.total = this.perImage.reduce((a, objects) => a + objects.length, 0);
    if (this.total === 0) throw new Error(`pretrain.stemCrops: dataset '${dataset.name}' has no thing objects`);
  }

  objectsAt(step: number, batchSize: number): ThingObject[] {
    return Array.from({ length: batchSize }, (_, j) => {
      const position = step * batchSize + j;
      return this.epochOrder(Math.floor(position / this.total))[position % this.total]!;
    });
  }

  private epochOrder(epoch: number): ThingObject[] {
    if (this.cached?.epoch !== epoch) {
      const images = new Rng(mixSeed(this.seed, epoch)).shuffle(Array.from(this.perImage.keys()));
      this.cached = { epoch, order: images.flatMap((i) => this.perImage[i]!) };
    }
    return this.cached.order;
  }
}

/** How the full-image steps show images: fitted to `imageSize`, flips, scale jitter (AugmentOptions). */
export interface CropAugment {
  imageSize: number;
  flipProbability: number;
  scaleRange: [number, number];
  /** Without cropping the full-image steps never scale an image past the fit. */
  crop: boolean;
  /** Largest offset of a crop's centre from its box's (pixels, each axis). */
  shift: number;
}

/**
 * Each object's scale, flip and crop offset: the image's fit to the canvas times a jitter drawn
 * from `scaleRange`, as the full-image steps draw one per image (here one per object), and an
 * integer offset in [-shift, shift] on each axis.
 */
export function augmentPicks(
  dataset: TrainingDataset,
  objects: readonly ThingObject[],
  rng: Rng,
  augment: CropAugment,
): CropPick[] {
  const [lo, hi] = augment.scaleRange;
  return objects.map((o) => {
    const flip = rng.next() < augment.flipProbability;
    const jitter = lo + (hi - lo) * rng.next();
    const shift: [number, number] = [rng.int(-augment.shift, augment.shift), rng.int(-augment.shift, augment.shift)];
    const { width, height } = dataset.image(o.image);
    const scale = jitteredScale(width, height, augment.imageSize, jitter, augment.crop);
    return { ...o, flip, scale, shift };
  });
}

/** Objects as the full-image steps show them without augmentation (fit to the canvas, no flip). */
export function plainPicks(dataset: TrainingDataset, objects: readonly ThingObject[], imageSize: number): CropPick[] {
  return objects.map((o) => {
    const { width, height } = dataset.image(o.image);
    return { ...o, flip: false, scale: jitteredScale(width, height, imageSize, 1, false), shift: [0, 0] };
  });
}

/** The crops of `picks`, each image read once (its things' masks decoded from the records). */
export async function loadCrops(
  dataset: TrainingDataset,
  picks: readonly CropPick[],
  size: number,
  normalisation: { pixelMean: [number, number, number]; pixelStd: [number, number, number] },
): Promise<CropBatch> {
  const images = new Map<number, Promise<RgbImage>>();
  for (const p of picks) if (!images.has(p.image)) images.set(p.image, readImage(dataset.image(p.image).file));
  const pixels: Float32Array[] = [];
  const regions: Uint8Array[] = [];
  const labels = new Int32Array(picks.length);
  for (const [k, p] of picks.entries()) {
    const record = dataset.image(p.image);
    const image = await getOrThrow(images, p.image, 'crop images');
    if (image.width !== record.width || image.height !== record.height)
      throw new Error(
        `${record.file}: image is ${image.width}x${image.height}, ${dataset.records.source} says ${record.width}x${record.height}`,
      );
    const a = record.annotations[p.annotation]!;
    const at = placeCrop(a.box, size, p.scale, p.flip, p.shift);
    pixels.push(cropPixels(image, at, normalisation.pixelMean, normalisation.pixelStd));
    const mask = a.segmentation ? decodeSegmentation(a, record) : undefined;
    regions.push(cropRegion(mask, a.box, record.width, record.height, at));
    labels[k] = getOrThrow(dataset.categoryIndex, a.categoryId, `${dataset.records.source}: category ids`);
  }
  return { pixels: concatArrays(Float32Array, pixels), regions, labels, count: picks.length, size };
}
