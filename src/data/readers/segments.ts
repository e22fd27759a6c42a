import { readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { AnnotationRecord, DatasetRecords, ImageRecord } from '../types.js';
import { parseCocoInstances, parseSegmentation } from './coco.js';
import { Fields } from './fields.js';
import { readJsonFile } from './json-file.js';

export interface SegmentsReadOptions {
  imageRoot?: string;
  maxBytes?: number;
  /** For a folder of per-image files: read at most this many (SA-1B folders hold ~11k each). */
  maxFiles?: number;
}

/**
 * Class-agnostic segment sets (SA-1B style). Accepts one COCO-like file ({images, annotations}),
 * one SA-1B per-image file ({image, annotations}), or a folder of per-image files.
 */
export function readSegments(path: string, options: SegmentsReadOptions = {}): DatasetRecords {
  if (statSync(path).isDirectory()) {
    const files = readdirSync(path)
      .filter((n) => n.endsWith('.json'))
      .sort()
      .slice(0, options.maxFiles ?? Infinity);
    const images = files.map((n) =>
      parseSa1bImage(readJsonFile(join(path, n), options.maxBytes), join(path, n), options.imageRoot ?? path),
    );
    return { source: path, kind: 'class-agnostic', categories: [], images, federated: false };
  }
  const json = readJsonFile(path, options.maxBytes);
  const root = new Fields(path).object(json, 'top level');
  if ('image' in root && !('images' in root)) {
    const image = parseSa1bImage(json, path, options.imageRoot ?? dirname(resolve(path)));
    return { source: path, kind: 'class-agnostic', categories: [], images: [image], federated: false };
  }
  return parseCocoInstances(json, path, { kind: 'class-agnostic', imageRoot: options.imageRoot });
}

function parseSa1bImage(json: unknown, file: string, imageRoot: string): ImageRecord {
  const f: Fields = new Fields(file);
  const root = f.object(json, 'top level');
  const im = f.object(root.image, "'image'");
  const width = f.positiveInteger(im, 'width', "'image'");
  const height = f.positiveInteger(im, 'height', "'image'");
  const record: ImageRecord = {
    id: f.integer(im, 'image_id', "'image'"),
    file: resolve(imageRoot, f.string(im, 'file_name', "'image'")),
    width,
    height,
    annotations: [],
  };
  f.array(root, 'annotations', 'top level').forEach((raw, i) => {
    const where0 = `annotations[${i}]`;
    const a = f.object(raw, where0);
    const id = a.id === undefined ? i : f.integer(a, 'id', where0);
    const where = `${where0} (id ${id})`;
    const b = f.array(a, 'bbox', where);
    if (b.length !== 4 || !b.every((v) => typeof v === 'number' && Number.isFinite(v) && v >= -1e6 && v <= 1e6))
      f.fail(where, "'bbox' must be 4 finite numbers [x, y, w, h]");
    const [x, y, w, h] = b as [number, number, number, number];
    if (w < 0 || h < 0) f.fail(where, `'bbox' has a negative size ${w}x${h}`);
    const annotation: AnnotationRecord = { id, box: [x, y, x + w, y + h], categoryId: -1, isCrowd: false };
    const seg = parseSegmentation(f, a.segmentation, where, width, height);
    if (seg) annotation.segmentation = seg;
    record.annotations.push(annotation);
  });
  return record;
}
