import { closeSync, openSync, readSync, readdirSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import type { CategoryRecord, DatasetRecords, ImageRecord } from '../types.js';
import { DatasetFormatError } from './json-file.js';

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
  for (const name of listDir(labelDir).filter((n) => extname(n).toLowerCase() === '.png').sort()) {
    const stem = basename(name, extname(name));
    const imageName = imagesByStem.get(stem);
    if (!imageName) throw new DatasetFormatError(join(labelDir, name), '', `no image named ${stem}.* in ${imageDir}`);
    const labelFile = join(labelDir, name);
    const { width, height } = pngSize(labelFile);
    images.push({ id: images.length, file: join(imageDir, imageName), width, height, annotations: [], semanticFile: labelFile });
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
