import type { Segmentation } from '../../structures/segmentation.js';

/**
 * COCO instance files as plain typed objects. Field names keep the file format's snake_case so a
 * parsed file is the same object the JSON holds.
 */

export interface CocoImage {
  id: number;
  width: number;
  height: number;
  file_name?: string;
}

export interface CocoCategory {
  id: number;
  name: string;
  supercategory?: string;
}

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  /** xywh in pixels. */
  bbox?: [number, number, number, number];
  /** Used for the area ranges (small/medium/large); taken as given, not recomputed. */
  area?: number;
  /** 1 marks a crowd region: detections inside it are neither rewarded nor penalised. */
  iscrowd?: number;
  segmentation?: Segmentation;
}

export interface CocoDataset {
  images: CocoImage[];
  annotations: CocoAnnotation[];
  categories: CocoCategory[];
}

/** One detection as a results file holds it. */
export interface CocoResult {
  image_id: number;
  category_id: number;
  score: number;
  /** xywh in pixels. */
  bbox?: [number, number, number, number];
  segmentation?: Segmentation;
}

export type CocoIouType = 'bbox' | 'segm';
