/**
 * The records that dataset readers produce and sample mappers consume. Geometry is in pixels of
 * the original image, boxes as [x0, y0, x1, y1]; segmentations stay in their file form (polygons
 * or RLE) until a sample needs them as bitmaps.
 */

export type BoxXYXY = [number, number, number, number];

/** COCO run-length encoding: counts as numbers (uncompressed) or the compact string form. */
export interface RleSegmentation {
  size: [number, number];
  counts: number[] | string;
}

/** Polygons as flat [x0, y0, x1, y1, ...] lists (COCO), or one RLE. */
export type Segmentation = number[][] | RleSegmentation;

/** What a dataset's annotations can teach; it picks the default losses (see sampler/loss-switches). */
export type DatasetKind = 'detection' | 'semantic' | 'grounding' | 'class-agnostic';

export interface CategoryRecord {
  /** The id used in the file. */
  id: number;
  name: string;
  /** false for stuff classes (sky, grass), which are split into connected components. */
  isThing: boolean;
  /** LVIS `image_count`: how many images have it; federated sampling weights are its square root. */
  imageCount?: number;
}

export interface AnnotationRecord {
  /** The annotation id in the file (or a running number where the format has none). */
  id: number;
  box: BoxXYXY;
  /** Category id from the file; -1 for class-agnostic segments and for grounding phrases. */
  categoryId: number;
  segmentation?: Segmentation;
  /** A crowd region: not a training target, and matched predictions there are not penalised. */
  isCrowd: boolean;
  /** Referring expressions / phrases that name this object (grounding files). */
  sentences?: string[];
}

export interface ImageRecord {
  /** The image id in the file. */
  id: number;
  /** Absolute path of the image file. */
  file: string;
  width: number;
  height: number;
  annotations: AnnotationRecord[];
  /** A label PNG (value = category id) for semantic datasets. */
  semanticFile?: string;
  /** LVIS: categories verified absent from the image (always trained as negatives). */
  negCategoryIds?: number[];
  /** LVIS: categories present but not exhaustively annotated (their negatives are not trained). */
  notExhaustiveCategoryIds?: number[];
}

export interface DatasetRecords {
  /** A name for messages and progress lines (usually the file path). */
  source: string;
  kind: DatasetKind;
  categories: CategoryRecord[];
  images: ImageRecord[];
  /** true when any image carries LVIS federated fields. */
  federated: boolean;
  /** Semantic sets: label values that mean "not labelled" (default [255]). */
  ignoreLabels?: number[];
}
