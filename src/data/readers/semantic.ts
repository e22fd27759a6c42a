import { closeSync, openSync, readSync, readdirSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { CategoryRecord, DatasetRecords, ImageRecord } from '../types.js';
import { describe, Fields } from './fields.js';
import { DatasetFormatError, readJsonFile } from './json-file.js';

export interface SemanticIndexOptions {
  /** Folder that images' `file_name` is relative to (default: the index file's folder). */
  imageRoot?: string;
  maxBytes?: number;
}

/**
 * A semantic-segmentation index file (detectron2 style): `categories` (id, name, isthing),
 * `ignore_label`, and `images` with `file_name` (under imageRoot) and `sem_seg_file_name` (a label
 * PNG relative to the index file). Sizes come from the label PNG headers.
 */
export function readSemanticIndex(file: string, options: SemanticIndexOptions = {}): DatasetRecords {
  const f: Fields = new Fields(file);
  const root = f.object(readJsonFile(file, options.maxBytes), 'top level');
  const base = dirname(resolve(file));
  const imageRoot = options.imageRoot ?? base;
  const categories: CategoryRecord[] = f.array(root, 'categories', 'top level').map((raw, i) => {
    const c = f.object(raw, `categories[${i}]`);
    const id = f.integer(c, 'id', `categories[${i}]`);
    if (id < 0 || id > 255) f.fail(`categories[${i}]`, `id ${id} cannot be an 8-bit label value`);
    return {
      id,
      name: f.string(c, 'name', `categories[${i}]`),
      isThing: c.isthing === undefined ? true : c.isthing === 1 || c.isthing === true,
    };
  });
  let ignore = 255;
  if (root.ignore_label !== undefined) {
    ignore = Number(root.ignore_label);
    if (!Number.isInteger(ignore) || ignore < 0 || ignore > 255)
      f.fail('top level', `'ignore_label' must be an integer 0-255, got ${describe(root.ignore_label)}`);
  }
  const images: ImageRecord[] = f.array(root, 'images', 'top level').map((raw, i) => {
    const im = f.object(raw, `images[${i}]`);
    const where = `images[${i}]`;
    const semanticFile = resolve(base, f.string(im, 'sem_seg_file_name', where));
    const { width, height } = pngSize(semanticFile);
    return {
      id: im.id === undefined ? i : f.integer(im, 'id', where),
      file: resolve(imageRoot, f.string(im, 'file_name', where)),
      width,
      height,
      annotations: [],
      semanticFile,
    };
  });
  return { source: file, kind: 'semantic', categories, images, federated: false, ignoreLabels: [ignore] };
}

export interface SemanticReadOptions {
  /** Folder of images (png, jpg, jpeg, webp). */
  imageDir: string;
  /** Folder of single-channel label PNGs named like the images (pixel value = category id). */
  labelDir: string;
  categories: CategoryRecord[];
}

const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp'];

/**
 * Semantic segmentation sets: an image folder and a label-PNG folder paired by base name. The
 * size comes from each label PNG's header; the masks are read when a sample is made.
 */
export function readSemanticFolders(options: SemanticReadOptions): DatasetRecords {
  const imageDir = resolve(options.imageDir);
  const labelDir = resolve(options.labelDir);
  const imagesByStem = new Map<string, string>();
  for (const name of listDir(imageDir)) {
    if (IMAGE_EXTENSIONS.includes(extname(name).toLowerCase())) imagesByStem.set(basename(name, extname(name)), name);
  }
  const images: ImageRecord[] = [];
  for (const name of listDir(labelDir)
    .filter((n) => extname(n).toLowerCase() === '.png')
    .sort()) {
    const stem = basename(name, extname(name));
    const imageName = imagesByStem.get(stem);
    if (!imageName) throw new DatasetFormatError(join(labelDir, name), '', `no image named ${stem}.* in ${imageDir}`);
    const labelFile = join(labelDir, name);
    const { width, height } = pngSize(labelFile);
    images.push({
      id: images.length,
      file: join(imageDir, imageName),
      width,
      height,
      annotations: [],
      semanticFile: labelFile,
    });
  }
  if (images.length === 0) throw new DatasetFormatError(labelDir, '', 'holds no label PNGs');
  return { source: labelDir, kind: 'semantic', categories: options.categories, images, federated: false };
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (err) {
    throw new DatasetFormatError(dir, '', `cannot list folder (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** Width and height from a PNG's IHDR chunk (the first 24 bytes). */
export function pngSize(file: string): { width: number; height: number } {
  const head = Buffer.alloc(24);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, 24, 0);
  } finally {
    closeSync(fd);
  }
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (!signature.every((b, i) => head[i] === b) || head.toString('latin1', 12, 16) !== 'IHDR') {
    throw new DatasetFormatError(file, '', 'not a PNG file');
  }
  const width = head.readUInt32BE(16);
  const height = head.readUInt32BE(20);
  if (width === 0 || height === 0) throw new DatasetFormatError(file, '', `PNG has an empty size ${width}x${height}`);
  return { width, height };
}
