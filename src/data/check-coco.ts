import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { inspectImage } from '../io/image-header.js';
import { assertRleValid, rleArea, type Rle } from '../structures/rle.js';
import { decompressRle } from '../structures/rle-string.js';
import { IssueList, TooManyIssues, type CheckIssue } from './synth/check-issues.js';
import { parseCocoInstances } from './readers/coco.js';
import { DatasetFormatError, readJsonFile } from './readers/json-file.js';
import type { DatasetRecords } from './types.js';
import { getOrThrow } from '../util/checked.js';

export interface CocoCheckStats {
  images: number;
  annotations: number;
  categories: number;
  /** Annotations per category name. */
  byCategory: Record<string, number>;
}

export interface CocoCheckReport {
  ok: boolean;
  issues: CheckIssue[];
  stats: CocoCheckStats;
}

type Json = Record<string, unknown>;

/** Boxes may reach past the mask's extent by rounding, not past the image. */
const BOX_SLACK = 0.5;

/**
 * Verifies a COCO instances file as training and evaluation read it (any categories, not only
 * the synthetic world's): the reader accepts it; every image file exists (relative to the
 * file's folder) with the recorded size; each RLE mask decodes to the image's size and its area
 * field is its pixel count; boxes lie inside their image; scores, where present, are in [0, 1].
 */
export async function checkCocoInstancesFile(
  file: string,
  options: { maxIssues?: number } = {},
): Promise<CocoCheckReport> {
  const issues = new IssueList(options.maxIssues ?? 20);
  const stats: CocoCheckStats = { images: 0, annotations: 0, categories: 0, byCategory: {} };
  const name = basename(file);
  try {
    let json: unknown;
    let records: DatasetRecords;
    try {
      json = readJsonFile(file);
      records = parseCocoInstances(json, file, { kind: 'detection' });
    } catch (error) {
      if (!(error instanceof DatasetFormatError)) throw error;
      const prefix = `${error.file}: ${error.where ? `${error.where}: ` : ''}`;
      issues.add(name, error.where || 'file', '-', error.message.slice(prefix.length));
      return { ok: false, issues: issues.issues, stats };
    }
    stats.images = records.images.length;
    stats.categories = records.categories.length;
    const categoryName = new Map(records.categories.map((c) => [c.id, c.name]));
    for (const image of records.images) {
      const where = `image id ${image.id}`;
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await readFile(image.file));
      } catch (error) {
        issues.add(
          name,
          where,
          'file_name',
          `${image.file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
        );
        continue;
      }
      try {
        const header = inspectImage(bytes, { source: image.file });
        if (header.width !== image.width || header.height !== image.height) {
          issues.add(
            name,
            where,
            'width/height',
            `${image.width}x${image.height} but ${image.file} is ${header.width}x${header.height}`,
          );
        }
      } catch (error) {
        issues.add(name, where, 'file_name', (error as Error).message);
      }
    }
    const byId = new Map(records.images.map((image) => [image.id, image]));
    for (const raw of (json as Json).annotations as Json[]) {
      stats.annotations++;
      const where = `annotation id ${String(raw.id)}`;
      const image = getOrThrow(byId, raw.image_id as number, `${where}: image ids`);
      const label = categoryName.get(raw.category_id as number) ?? String(raw.category_id);
      stats.byCategory[label] = (stats.byCategory[label] ?? 0) + 1;
      // parseCocoInstances has checked that every bbox is 4 finite numbers.
      const [x, y, w, h] = raw.bbox as [number, number, number, number];
      if (x < -BOX_SLACK || y < -BOX_SLACK || x + w > image.width + BOX_SLACK || y + h > image.height + BOX_SLACK) {
        issues.add(
          name,
          where,
          'bbox',
          `${JSON.stringify(raw.bbox)} reaches outside image ${image.id} (${image.width}x${image.height})`,
        );
      }
      if (raw.score !== undefined && (typeof raw.score !== 'number' || !(raw.score >= 0 && raw.score <= 1)))
        issues.add(name, where, 'score', `${JSON.stringify(raw.score)} is not a number from 0 to 1`);
      const seg = raw.segmentation as Json | undefined;
      if (seg && !Array.isArray(seg) && typeof seg.counts === 'string') {
        let rle: Rle;
        try {
          rle = decompressRle({ size: [image.height, image.width], counts: seg.counts });
          assertRleValid(rle, 'counts');
        } catch (error) {
          issues.add(name, where, 'segmentation.counts', (error as Error).message);
          continue;
        }
        const area = rleArea(rle);
        if (raw.area !== undefined && raw.area !== area)
          issues.add(name, where, 'area', `${JSON.stringify(raw.area)} but the mask has ${area} pixels`);
      }
    }
  } catch (error) {
    if (!(error instanceof TooManyIssues)) throw error;
  }
  return { ok: issues.issues.length === 0, issues: issues.issues, stats };
}
