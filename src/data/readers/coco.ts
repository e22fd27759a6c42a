import { dirname, resolve } from 'node:path';
import type {
  AnnotationRecord,
  BoxXYXY,
  CategoryRecord,
  DatasetKind,
  DatasetRecords,
  ImageRecord,
  Segmentation,
} from '../types.js';
import { Fields, describe } from './fields.js';
import { readJsonFile } from './json-file.js';

export interface CocoReadOptions {
  /** Folder that `file_name` is relative to; defaults to the JSON file's folder. */
  imageRoot?: string;
  /**
   * 'detection' (default): categories required. 'grounding': every kept annotation carries
   * `sentences` (annotations without any are dropped). 'class-agnostic': categories are ignored.
   */
  kind?: DatasetKind;
  maxBytes?: number;
}

/**
 * COCO-format instance files: images, annotations (polygons, RLE, crowd regions), categories
 * (with `isthing` for panoptic-style stuff), and the LVIS federated fields where present.
 */
export function readCocoInstances(file: string, options: CocoReadOptions = {}): DatasetRecords {
  return parseCocoInstances(readJsonFile(file, options.maxBytes), file, options);
}

export function parseCocoInstances(json: unknown, file: string, options: CocoReadOptions = {}): DatasetRecords {
  const f: Fields = new Fields(file);
  const kind = options.kind ?? 'detection';
  const root = f.object(json, 'top level');
  const imageRoot = options.imageRoot ?? dirname(resolve(file));

  const categories: CategoryRecord[] = [];
  const categoryIds = new Set<number>();
  const rawCategories = kind === 'class-agnostic' ? undefined : f.optionalArray(root, 'categories', 'top level');
  if (kind === 'detection' && !rawCategories)
    f.fail('top level', "'categories' is missing (a detection file needs them)");
  (rawCategories ?? []).forEach((raw, i) => {
    const where = `categories[${i}]`;
    const c = f.object(raw, where);
    const id = f.integer(c, 'id', where);
    if (categoryIds.has(id)) f.fail(where, `duplicate category id ${id}`);
    categoryIds.add(id);
    const isThing = c.isthing === undefined ? true : c.isthing === 1 || c.isthing === true;
    if (c.isthing !== undefined && !isThing && c.isthing !== 0 && c.isthing !== false)
      f.fail(where, `'isthing' must be 0 or 1, got ${describe(c.isthing)}`);
    const category: CategoryRecord = { id, name: f.string(c, 'name', where), isThing };
    if (c.image_count !== undefined) category.imageCount = f.integer(c, 'image_count', where);
    categories.push(category);
  });

  const images: ImageRecord[] = [];
  const byId = new Map<number, ImageRecord>();
  let federated = false;
  f.array(root, 'images', 'top level').forEach((raw, i) => {
    const where0 = `images[${i}]`;
    const im = f.object(raw, where0);
    const id = f.integer(im, 'id', where0);
    const where = `${where0} (id ${id})`;
    if (byId.has(id)) f.fail(where, `duplicate image id ${id}`);
    const name =
      typeof im.file_name === 'string'
        ? im.file_name
        : typeof im.coco_url === 'string'
          ? im.coco_url.slice(im.coco_url.lastIndexOf('/') + 1)
          : f.string(im, 'file_name', where);
    if (name.length === 0 || name.includes('\0')) f.fail(where, `bad 'file_name' ${describe(name)}`);
    const record: ImageRecord = {
      id,
      file: resolve(imageRoot, name),
      width: f.positiveInteger(im, 'width', where),
      height: f.positiveInteger(im, 'height', where),
      annotations: [],
    };
    const neg = f.integerList(im, 'neg_category_ids', where);
    const notExhaustive = f.integerList(im, 'not_exhaustive_category_ids', where);
    for (const [key, list] of [
      ['neg_category_ids', neg],
      ['not_exhaustive_category_ids', notExhaustive],
    ] as const) {
      for (const c of list ?? []) if (!categoryIds.has(c)) f.fail(where, `'${key}' names unknown category ${c}`);
    }
    if (neg) record.negCategoryIds = neg;
    if (notExhaustive) record.notExhaustiveCategoryIds = notExhaustive;
    if (neg || notExhaustive) federated = true;
    byId.set(id, record);
    images.push(record);
  });

  f.array(root, 'annotations', 'top level').forEach((raw, i) => {
    const where0 = `annotations[${i}]`;
    const a = f.object(raw, where0);
    const id = a.id === undefined ? i : f.integer(a, 'id', where0);
    const where = `${where0} (id ${id})`;
    const imageId = f.integer(a, 'image_id', where);
    const image = byId.get(imageId);
    if (!image) f.fail(where, `'image_id' ${imageId} is not in 'images'`);
    let categoryId = -1;
    if (kind !== 'class-agnostic' && a.category_id !== undefined) {
      categoryId = f.integer(a, 'category_id', where);
      if (!categoryIds.has(categoryId)) f.fail(where, `'category_id' ${categoryId} is not in 'categories'`);
    } else if (kind === 'detection') {
      f.fail(where, "'category_id' is missing");
    }
    const isCrowd = a.iscrowd === 1 || a.iscrowd === true;
    if (a.iscrowd !== undefined && !isCrowd && a.iscrowd !== 0 && a.iscrowd !== false)
      f.fail(where, `'iscrowd' must be 0 or 1, got ${describe(a.iscrowd)}`);
    const annotation: AnnotationRecord = { id, box: parseBox(f, a, where), categoryId, isCrowd };
    if (a.segmentation !== undefined && a.segmentation !== null) {
      const seg = parseSegmentation(f, a.segmentation, where, image.width, image.height);
      if (seg) annotation.segmentation = seg;
    }
    if (a.sentences !== undefined) annotation.sentences = parseSentences(f, a.sentences, where);
    if (kind === 'grounding' && !annotation.sentences?.length) return;
    image.annotations.push(annotation);
  });

  return { source: file, kind, categories, images, federated };
}

function parseBox(f: Fields, a: Record<string, unknown>, where: string): BoxXYXY {
  const b = f.array(a, 'bbox', where);
  if (b.length !== 4 || !b.every((v) => typeof v === 'number' && Number.isFinite(v)))
    f.fail(where, `'bbox' must be 4 finite numbers [x, y, w, h], got ${JSON.stringify(b).slice(0, 80)}`);
  const [x, y, w, h] = b as [number, number, number, number];
  if (w < 0 || h < 0) f.fail(where, `'bbox' has a negative size ${w}x${h}`);
  return [x, y, x + w, y + h];
}

/** Polygons with fewer than 3 points enclose nothing and are dropped (COCO has a few). */
export function parseSegmentation(
  f: Fields,
  raw: unknown,
  where: string,
  width: number,
  height: number,
): Segmentation | undefined {
  if (Array.isArray(raw)) {
    const polygons: number[][] = [];
    raw.forEach((poly, j) => {
      if (!Array.isArray(poly))
        f.fail(where, `'segmentation[${j}]' must be a list of coordinates, got ${describe(poly)}`);
      if (poly.length % 2 !== 0)
        f.fail(where, `'segmentation[${j}]' has an odd number (${poly.length}) of coordinates`);
      for (const v of poly)
        if (typeof v !== 'number' || !Number.isFinite(v))
          f.fail(where, `'segmentation[${j}]' holds ${describe(v)}, not a number`);
      if (poly.length >= 6) polygons.push(poly as number[]);
    });
    return polygons.length > 0 ? polygons : undefined;
  }
  const rle = f.object(raw, `${where}: 'segmentation'`);
  const size = f.array(rle, 'size', `${where}: 'segmentation'`);
  if (size.length !== 2 || size[0] !== height || size[1] !== width) {
    f.fail(where, `RLE 'size' ${JSON.stringify(size)} does not match the image's [${height}, ${width}]`);
  }
  const counts = rle.counts;
  if (typeof counts === 'string') {
    if (counts.length > 8 * width * height + 16)
      f.fail(where, 'RLE counts string is longer than any mask of this size');
    return { size: [height, width], counts };
  }
  if (!Array.isArray(counts))
    f.fail(where, `RLE 'counts' must be a string or a list of integers, got ${describe(counts)}`);
  let total = 0;
  for (const c of counts) {
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 0)
      f.fail(where, `RLE 'counts' holds ${describe(c)}, not a non-negative integer`);
    total += c;
  }
  if (total !== width * height) f.fail(where, `RLE 'counts' cover ${total} pixels, the image has ${width * height}`);
  return { size: [height, width], counts: counts as number[] };
}

/** Accepts plain strings or RefCOCO-style objects ({sent} or {raw}). */
function parseSentences(f: Fields, raw: unknown, where: string): string[] {
  if (!Array.isArray(raw)) f.fail(where, `'sentences' must be an array, got ${describe(raw)}`);
  return raw.map((s, j) => {
    let text: unknown = s;
    if (typeof s === 'object' && s !== null && !Array.isArray(s))
      text = (s as Record<string, unknown>).sent ?? (s as Record<string, unknown>).raw;
    if (typeof text !== 'string' || text.trim().length === 0)
      f.fail(where, `'sentences[${j}]' must be a non-empty string (or {sent}), got ${describe(s)}`);
    if (text.length > 1000) f.fail(where, `'sentences[${j}]' is ${text.length} characters long (at most 1000)`);
    return text.trim();
  });
}
