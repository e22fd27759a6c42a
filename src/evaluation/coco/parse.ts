import { MAX_MASK_SIDE } from '../../structures/rle.js';
import { decompressRle } from '../../structures/rle-string.js';
import type { Segmentation } from '../../structures/segmentation.js';
import type { CocoAnnotation, CocoCategory, CocoDataset, CocoImage, CocoResult } from './types.js';

/**
 * Validating readers for COCO ground-truth and results files. Every problem is reported with the
 * file, the record (e.g. `annotations[12].bbox`) and the offending value, before any evaluation runs.
 */

export class CocoFormatError extends Error {
  override name = 'CocoFormatError';
}

/** Polygon coordinates beyond this are certainly not pixels (and would make rasterisation unbounded). */
const MAX_COORDINATE = 1e8;

type Json = Record<string, unknown>;

/**
 * A short picture of a value for messages. Nesting past two levels is shown as `[...]` / `{...}`:
 * JSON.stringify and String() recurse into the whole value, and a file nested a million levels
 * deep would overflow the stack and lose the message.
 */
function preview(value: unknown, depth = 0): string {
  if (Array.isArray(value)) {
    if (depth >= 2) return value.length === 0 ? '[]' : '[...]';
    return `[${value
      .slice(0, 4)
      .map((v) => preview(v, depth + 1))
      .join(',')}${value.length > 4 ? ',...' : ''}]`;
  }
  if (typeof value === 'object' && value !== null) {
    const keys = Object.keys(value);
    if (depth >= 2) return keys.length === 0 ? '{}' : '{...}';
    const shown = keys
      .slice(0, 4)
      .map((k) => `${JSON.stringify(k.slice(0, 40))}:${preview((value as Json)[k], depth + 1)}`);
    return `{${shown.join(',')}${keys.length > 4 ? ',...' : ''}}`;
  }
  const text = typeof value === 'string' ? JSON.stringify(value.slice(0, 100)) : String(value);
  return text;
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const s = preview(value);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

class Checker {
  constructor(readonly file: string) {}

  fail(path: string, problem: string, value: unknown): never {
    throw new CocoFormatError(`${this.file}: ${path}: ${problem}, got ${show(value)}`);
  }

  record(value: unknown, path: string): Json {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      this.fail(path, 'expected an object', value);
    return value as Json;
  }

  array(value: unknown, path: string): unknown[] {
    if (!Array.isArray(value)) this.fail(path, 'expected an array', value);
    return value;
  }

  id(value: unknown, path: string): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) this.fail(path, 'expected an integer id', value);
    return value;
  }

  finite(value: unknown, path: string): number {
    if (typeof value !== 'number' || !Number.isFinite(value)) this.fail(path, 'expected a finite number', value);
    return value;
  }

  optionalString(value: unknown, path: string): string | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'string') this.fail(path, 'expected a string', value);
    return value;
  }

  bbox(value: unknown, path: string): [number, number, number, number] {
    if (
      !Array.isArray(value) ||
      value.length !== 4 ||
      !value.every((v) => typeof v === 'number' && Number.isFinite(v))
    ) {
      this.fail(path, 'expected [x, y, width, height] of 4 finite numbers', value);
    }
    if (value[2] < 0 || value[3] < 0) this.fail(path, 'width and height must be >= 0', value);
    return [value[0], value[1], value[2], value[3]];
  }

  segmentation(value: unknown, path: string, image: CocoImage): Segmentation {
    if (Array.isArray(value)) {
      value.forEach((ring, i) => {
        if (!Array.isArray(ring)) this.fail(`${path}[${i}]`, 'expected a polygon [x0, y0, x1, y1, ...]', ring);
        ring.forEach((v, j) => {
          if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > MAX_COORDINATE) {
            this.fail(`${path}[${i}][${j}]`, `expected a finite coordinate within ${MAX_COORDINATE}`, v);
          }
        });
      });
      return value as number[][];
    }
    const rle = this.record(value, path);
    const size = rle.size;
    if (!Array.isArray(size) || size.length !== 2 || size[0] !== image.height || size[1] !== image.width) {
      this.fail(
        `${path}.size`,
        `expected [height, width] = [${image.height}, ${image.width}] of image ${image.id}`,
        size,
      );
    }
    const pixels = image.height * image.width;
    const counts = rle.counts;
    let total = 0;
    if (typeof counts === 'string') {
      try {
        total = decompressRle({ size: [image.height, image.width], counts }).counts.reduce((a, b) => a + b, 0);
      } catch (err) {
        this.fail(`${path}.counts`, (err as Error).message, counts);
      }
    } else if (Array.isArray(counts)) {
      for (let i = 0; i < counts.length; i++) {
        const c = counts[i];
        if (typeof c !== 'number' || !Number.isInteger(c) || c < 0)
          this.fail(`${path}.counts[${i}]`, 'expected a non-negative integer run length', c);
        total += c;
      }
    } else {
      this.fail(`${path}.counts`, 'expected a compressed RLE string or an array of run lengths', counts);
    }
    if (total !== pixels)
      this.fail(
        `${path}.counts`,
        `runs cover ${total} pixels, the ${image.height}x${image.width} image has ${pixels}`,
        counts,
      );
    return { size: [image.height, image.width], counts } as Segmentation;
  }
}

function parseJson(input: unknown, check: Checker): unknown {
  if (typeof input !== 'string') return input;
  try {
    return JSON.parse(input);
  } catch (err) {
    throw new CocoFormatError(`${check.file}: not valid JSON (${(err as Error).message})`);
  }
}

/**
 * Reads a COCO instances file (text or already-parsed JSON): images, categories and annotations,
 * checking ids are unique, annotations refer to known images and categories, and every box,
 * area, crowd flag and mask is well formed and fits its image.
 */
export function parseCocoGroundTruth(input: unknown, fileName = 'ground truth'): CocoDataset {
  const check: Checker = new Checker(fileName);
  const root = parseJson(input, check);
  if (typeof root !== 'object' || root === null || Array.isArray(root)) {
    check.fail(
      'top level',
      'expected an object with "images", "annotations" and "categories"',
      Array.isArray(root) ? '[...]' : root,
    );
  }
  const json = root as Json;

  const images: CocoImage[] = [];
  const imageById = new Map<number, CocoImage>();
  check.array(json.images, 'images').forEach((raw, i) => {
    const path = `images[${i}]`;
    const r = check.record(raw, path);
    const id = check.id(r.id, `${path}.id`);
    if (imageById.has(id)) check.fail(`${path}.id`, 'duplicate image id', id);
    const side = (v: unknown, name: string): number => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_MASK_SIDE) {
        check.fail(`${path}.${name}`, `expected an integer in [1, ${MAX_MASK_SIDE}]`, v);
      }
      return v;
    };
    const image: CocoImage = { id, width: side(r.width, 'width'), height: side(r.height, 'height') };
    const fileNameField = check.optionalString(r.file_name, `${path}.file_name`);
    if (fileNameField !== undefined) image.file_name = fileNameField;
    images.push(image);
    imageById.set(id, image);
  });

  const categories: CocoCategory[] = [];
  const categoryIds = new Set<number>();
  check.array(json.categories, 'categories').forEach((raw, i) => {
    const path = `categories[${i}]`;
    const r = check.record(raw, path);
    const id = check.id(r.id, `${path}.id`);
    if (categoryIds.has(id)) check.fail(`${path}.id`, 'duplicate category id', id);
    const category: CocoCategory = { id, name: check.optionalString(r.name, `${path}.name`) ?? String(id) };
    const supercategory = check.optionalString(r.supercategory, `${path}.supercategory`);
    if (supercategory !== undefined) category.supercategory = supercategory;
    categories.push(category);
    categoryIds.add(id);
  });

  const annotations: CocoAnnotation[] = [];
  const annotationIds = new Set<number>();
  check.array(json.annotations, 'annotations').forEach((raw, i) => {
    const path = `annotations[${i}]`;
    const r = check.record(raw, path);
    const id = check.id(r.id, `${path}.id`);
    if (annotationIds.has(id)) check.fail(`${path}.id`, 'duplicate annotation id', id);
    annotationIds.add(id);
    const imageId = check.id(r.image_id, `${path}.image_id`);
    const image = imageById.get(imageId);
    if (!image) check.fail(`${path}.image_id`, 'no image with this id in "images"', imageId);
    const categoryId = check.id(r.category_id, `${path}.category_id`);
    if (!categoryIds.has(categoryId))
      check.fail(`${path}.category_id`, 'no category with this id in "categories"', categoryId);
    const ann: CocoAnnotation = { id, image_id: imageId, category_id: categoryId };
    if (r.bbox !== undefined) ann.bbox = check.bbox(r.bbox, `${path}.bbox`);
    if (r.area !== undefined) {
      ann.area = check.finite(r.area, `${path}.area`);
      if (ann.area < 0) check.fail(`${path}.area`, 'expected a non-negative area', r.area);
    }
    if (r.iscrowd !== undefined) {
      if (r.iscrowd === 0 || r.iscrowd === 1 || typeof r.iscrowd === 'boolean') ann.iscrowd = Number(r.iscrowd);
      else check.fail(`${path}.iscrowd`, 'expected 0 or 1', r.iscrowd);
    }
    if (r.segmentation !== undefined)
      ann.segmentation = check.segmentation(r.segmentation, `${path}.segmentation`, image);
    annotations.push(ann);
  });

  return { images, annotations, categories };
}

/**
 * Reads a COCO results file (text or already-parsed JSON): an array of detections, each with an
 * image and category of the ground truth, a finite score and a box and/or a mask.
 */
export function parseCocoResults(input: unknown, gt: CocoDataset, fileName = 'results'): CocoResult[] {
  const check: Checker = new Checker(fileName);
  const root = parseJson(input, check);
  if (!Array.isArray(root)) check.fail('top level', 'expected an array of detections', root);
  const imageById = new Map(gt.images.map((im) => [im.id, im]));
  const categoryIds = new Set(gt.categories.map((c) => c.id));
  return root.map((raw, i): CocoResult => {
    const path = `[${i}]`;
    const r = check.record(raw, path);
    const imageId = check.id(r.image_id, `${path}.image_id`);
    const image = imageById.get(imageId);
    if (!image) check.fail(`${path}.image_id`, 'not an image of the ground truth', imageId);
    const categoryId = check.id(r.category_id, `${path}.category_id`);
    if (!categoryIds.has(categoryId))
      check.fail(`${path}.category_id`, 'not a category of the ground truth', categoryId);
    const result: CocoResult = {
      image_id: imageId,
      category_id: categoryId,
      score: check.finite(r.score, `${path}.score`),
    };
    if (r.bbox !== undefined) result.bbox = check.bbox(r.bbox, `${path}.bbox`);
    if (r.segmentation !== undefined)
      result.segmentation = check.segmentation(r.segmentation, `${path}.segmentation`, image);
    if (result.bbox === undefined && result.segmentation === undefined) {
      check.fail(path, 'a detection needs "bbox" or "segmentation"', raw);
    }
    return result;
  });
}
