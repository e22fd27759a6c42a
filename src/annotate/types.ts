import type { CompressedRle } from '../structures/rle.js';

/** What every image of a run is asked: the prompts and the lowest score kept. */
export interface AnnotateSettings {
  /** Category names, each its own prompt (and its own COCO category). */
  vocabulary: string[];
  /** Sentences, each its own prompt after the vocabulary (and its own COCO category). */
  sentences: string[];
  /** Lowest instance score kept (0-1). */
  threshold: number;
}

/** One object found in an image, in COCO's terms except for the image and annotation ids. */
export interface FoundObject {
  /** The prompt's index (vocabulary first, then sentences); the COCO category id is this + 1. */
  prompt: number;
  /** [x, y, width, height] in pixels. */
  bbox: [number, number, number, number];
  /** Pixels in the mask (the box's area when the model gives no mask). */
  area: number;
  score: number;
  segmentation: CompressedRle | null;
}

/** Everything one image contributes to annotations.json. */
export interface ImageAnnotations {
  width: number;
  height: number;
  objects: FoundObject[];
}

/** An image's outcome: its annotations, or why it could not be annotated. */
export type ImageOutcome = { ok: true; result: ImageAnnotations } | { ok: false; reason: string };
