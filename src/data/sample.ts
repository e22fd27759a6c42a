import type { RgbImage } from '../io/image-types.js';
import type { BoxXYXY } from './types.js';

/** One object to learn in a training sample, in the sample image's pixels. */
export interface SampleInstance {
  box: BoxXYXY;
  /** Binary mask (row-major, the sample image's size) when the dataset has masks. */
  mask?: Uint8Array;
  /** Index into the sample's prompts; -1 for class-agnostic segments. */
  label: number;
}

/**
 * What a mapper hands to the batcher: an image, its objects and the prompts they answer to.
 * Vocabulary samples share their dataset's category names as prompts; sentence samples carry the
 * image's own phrases.
 */
export interface Sample {
  image: RgbImage;
  instances: SampleInstance[];
  prompts: string[];
  promptKind: 'vocabulary' | 'sentence';
  /** Whether instances carry masks (mask losses apply). */
  hasMasks: boolean;
  /**
   * Federated datasets: per-prompt weight of the class loss for this image (1 trained, 0 not).
   * Absent means every prompt is trained.
   */
  promptWeights?: Float32Array;
  /** Prompts whose negatives are not trained in this image (LVIS not-exhaustive categories). */
  positiveOnlyPrompts?: number[];
  source: string;
  imageId: number;
}
