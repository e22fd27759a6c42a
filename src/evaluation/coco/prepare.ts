import type { Box } from '../../structures/boxes.js';
import { rleArea, rleToBbox, type Rle } from '../../structures/rle.js';
import { toRle } from '../../structures/segmentation.js';
import type { CocoDataset, CocoIouType, CocoResult } from './types.js';

/** A ground-truth object reduced to what matching needs. */
export interface GtInstance {
  id: number;
  /** The annotation's own area field: decides the area range. */
  area: number;
  crowd: boolean;
  /** xywh used for bbox IoU: the annotation box for 'bbox', the mask's box for 'segm'. */
  box: Box;
  rle?: Rle;
}

/** A detection reduced to what matching needs. */
export interface DtInstance {
  /** 1-based position in the results file, as pycocotools numbers them. */
  id: number;
  score: number;
  area: number;
  box: Box;
  rle?: Rle;
}

export interface PreparedInstances {
  /** Keyed by imageIndex * numCategories + categoryIndex (indices into params' sorted ids). */
  gts: Map<number, GtInstance[]>;
  dts: Map<number, DtInstance[]>;
}

function push<T>(map: Map<number, T[]>, key: number, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/**
 * Groups ground truth and detections by (image, category), reproducing pycocotools' COCO.loadRes
 * and COCOeval._prepare: whether results are read as boxes or masks follows the first result
 * (with a box: area = w*h and a box polygon stands in for a missing mask; without: area and box
 * come from the mask), crowd regions become ignore regions, and file order is kept within each group.
 */
export function prepareInstances(
  gt: CocoDataset,
  results: readonly CocoResult[],
  type: CocoIouType,
  imgIds: readonly number[],
  catIds: readonly number[],
): PreparedInstances {
  const imageIndex = new Map(imgIds.map((id, i) => [id, i]));
  const categoryIndex = new Map(catIds.map((id, i) => [id, i]));
  const imageById = new Map(gt.images.map((im) => [im.id, im]));
  const K = catIds.length;
  const key = (imageId: number, categoryId: number): number | undefined => {
    const i = imageIndex.get(imageId);
    const k = categoryIndex.get(categoryId);
    return i === undefined || k === undefined ? undefined : i * K + k;
  };
  const size = (imageId: number): [number, number] => {
    const image = imageById.get(imageId);
    if (!image) throw new Error(`COCO evaluation: image ${imageId} is not in the ground truth`);
    return [image.height, image.width];
  };

  const gts = new Map<number, GtInstance[]>();
  gt.annotations.forEach((ann, n) => {
    const where = `ground truth annotations[${n}] (id ${ann.id})`;
    const k = key(ann.image_id, ann.category_id);
    if (k === undefined) return;
    let rle: Rle | undefined;
    const [h, w] = size(ann.image_id);
    if (ann.segmentation !== undefined && (type === 'segm' || ann.area === undefined || ann.bbox === undefined)) {
      rle = toRle(ann.segmentation, h, w);
    }
    if (type === 'segm' && rle === undefined) throw new Error(`${where}: 'segm' evaluation needs a segmentation`);
    // pycocotools requires area and bbox; where a file lacks them they are derived from the mask or box.
    const area = ann.area ?? (rle ? rleArea(rle) : ann.bbox ? ann.bbox[2] * ann.bbox[3] : undefined);
    if (area === undefined) throw new Error(`${where}: has no area, bbox or segmentation to take an area from`);
    const box = type === 'segm' && rle ? rleToBbox(rle) : (ann.bbox ?? (rle ? rleToBbox(rle) : undefined));
    if (box === undefined) throw new Error(`${where}: 'bbox' evaluation needs a bbox`);
    push(gts, k, { id: ann.id, area, crowd: ann.iscrowd === 1, box, rle: type === 'segm' ? rle : undefined });
  });

  const dts = new Map<number, DtInstance[]>();
  const readAsBoxes = results.length > 0 && results[0]!.bbox !== undefined;
  results.forEach((res, n) => {
    const where = `results[${n}]`;
    const [h, w] = size(res.image_id);
    const k = key(res.image_id, res.category_id);
    if (k === undefined) return;
    let instance: DtInstance;
    if (readAsBoxes) {
      if (res.bbox === undefined)
        throw new Error(`${where}: has no bbox, but the first result has one, so all are read as boxes`);
      const [x, y, bw, bh] = res.bbox;
      let rle: Rle | undefined;
      if (type === 'segm') {
        const x2 = x + bw;
        const y2 = y + bh;
        rle = toRle(res.segmentation ?? [[x, y, x, y2, x2, y2, x2, y]], h, w);
      }
      instance = { id: n + 1, score: res.score, area: bw * bh, box: rle ? rleToBbox(rle) : res.bbox, rle };
    } else {
      if (res.segmentation === undefined) {
        throw new Error(`${where}: has no segmentation, but the first result has no bbox, so all are read as masks`);
      }
      const rle = toRle(res.segmentation, h, w);
      const box = type === 'segm' ? rleToBbox(rle) : (res.bbox ?? rleToBbox(rle));
      instance = { id: n + 1, score: res.score, area: rleArea(rle), box, rle: type === 'segm' ? rle : undefined };
    }
    push(dts, k, instance);
  });
  return { gts, dts };
}
