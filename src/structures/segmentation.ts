import { rleFromPolygon } from './polygon.js';
import { assertRleValid, type CompressedRle, type Rle } from './rle.js';
import { decompressRle } from './rle-string.js';

/** A mask as COCO annotation and result files hold it. */
export type Segmentation = number[][] | Rle | CompressedRle;

/**
 * Any COCO segmentation to uncompressed RLE, as pycocotools annToRLE does: a polygon list is
 * rasterised ring by ring at h x w and merged; RLE objects keep their own size (checked against
 * h x w here, where the reference would silently score them -1).
 */
export function toRle(segmentation: Segmentation, h: number, w: number): Rle {
  // (pycocotools raises on a list whose first ring has exactly 4 numbers; here it is a degenerate polygon like any other.)
  if (Array.isArray(segmentation)) return rleFromPolygon(segmentation, h, w);
  const rle =
    typeof segmentation.counts === 'string'
      ? decompressRle(segmentation as CompressedRle)
      : { size: [segmentation.size[0], segmentation.size[1]] as [number, number], counts: segmentation.counts };
  if (rle.size[0] !== h || rle.size[1] !== w) {
    throw new Error(`segmentation: RLE size [${rle.size}] differs from the image size [${h}, ${w}]`);
  }
  assertRleValid(rle, 'segmentation');
  return rle;
}
