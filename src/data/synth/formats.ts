import type { CompressedRle } from '../../structures/rle.js';
import type { SentenceKind } from './referring.js';
import type { SynthCategory, ThingColor, ThingSize } from './categories.js';

/**
 * The files of one split, as written by writeSynthDataset and read by checkDataset:
 *
 *   images/000000.png ...      RGB images (image ids start at 1; file i-1 is image i)
 *   semantic/000000.png ...    8-bit category id per pixel (255 = ignore; unused, every pixel is labelled)
 *   instances.json             COCO instances: things one per object, stuff one per class per image
 *   semantic.json              the categories and the image -> label-map pairs
 *   grounding.json             COCO instances whose annotations carry RefCOCO-style sentences
 *   segments.json              SA-1B-style class-agnostic masks of every segment
 */
export const DATASET_FILES = {
  images: 'images',
  semantic: 'semantic',
  instances: 'instances.json',
  semanticIndex: 'semantic.json',
  grounding: 'grounding.json',
  segments: 'segments.json',
} as const;

export interface CocoImage {
  id: number;
  file_name: string;
  width: number;
  height: number;
}

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  segmentation: CompressedRle;
  /** Pixel count of the mask. */
  area: number;
  /** [x, y, w, h], the mask's extent as rleToBbox gives it. */
  bbox: [number, number, number, number];
  iscrowd: 0;
}

export interface InstanceAnnotation extends CocoAnnotation {
  /** Things only: the words the sentences use. */
  attributes?: { color: ThingColor; size: ThingSize };
}

export interface GroundingSentence {
  /** As a person would write it (capitalised, full stop). */
  raw: string;
  /** Normalised: lower case, no punctuation. */
  sent: string;
  kind: SentenceKind;
}

export interface GroundingAnnotation extends CocoAnnotation {
  sentences: GroundingSentence[];
  /** For a thing: its annotation id in instances.json. Stuff referents are pieces and have none. */
  instance_id?: number;
}

export interface DatasetInfo {
  description: string;
  version: number;
  seed: number;
  width: number;
  height: number;
  min_objects: number;
  max_objects: number;
}

export interface CocoFile<A> {
  info: DatasetInfo;
  images: CocoImage[];
  categories: { id: number; name: string; supercategory?: string; isthing?: 0 | 1 }[];
  annotations: A[];
}

export type InstancesFile = CocoFile<InstanceAnnotation> & { categories: SynthCategory[] };
export type GroundingFile = CocoFile<GroundingAnnotation> & { categories: SynthCategory[] };
export type SegmentsFile = CocoFile<CocoAnnotation>;

export interface SemanticIndexFile {
  ignore_label: number;
  categories: { id: number; name: string; isthing: 0 | 1 }[];
  images: { id: number; file_name: string; sem_seg_file_name: string }[];
}

/** The one category of segments.json. */
export const SEGMENT_CATEGORY = { id: 1, name: 'segment', supercategory: 'segment' } as const;

/** Image i (1-based id) is stored as images/<zero-padded i-1>.png. */
export function imageFileName(id: number): string {
  return `${String(id - 1).padStart(6, '0')}.png`;
}
