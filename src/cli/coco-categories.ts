import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseCocoGroundTruth } from '../evaluation/coco/parse.js';
import type { CocoInstanceJson } from '../inference/prediction-json.js';
import { UsageError } from './command.js';
import { getOrThrow } from '../util/checked.js';

/**
 * `ape predict --categories GT.json`: a COCO ground-truth file whose category names become the
 * prompts and whose ids (categories by name, images by file name) the results take, so that
 * `ape eval coco --gt GT.json --results OUT/results.json` scores them.
 */
export interface CategoryMapping {
  source: string;
  names: string[];
  idByName: Map<string, number>;
  imageIdByFile: Map<string, number>;
}

export async function readCategoryMapping(path: string): Promise<CategoryMapping> {
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new UsageError(`--categories ${path}: cannot read it (${e.code ?? e.message})`);
  });
  const gt = parseCocoGroundTruth(text, path);
  if (gt.categories.length === 0) throw new UsageError(`--categories ${path}: the file has no categories`);
  return {
    source: path,
    names: gt.categories.map((c) => c.name),
    idByName: new Map(gt.categories.map((c) => [c.name, c.id])),
    imageIdByFile: new Map(gt.images.flatMap((im) => (im.file_name ? [[basename(im.file_name), im.id] as const] : []))),
  };
}

/** The ground truth's image id of each input (by file name); every input must be one of its images. */
export function imageIdsOf(paths: readonly string[], mapping: CategoryMapping): number[] {
  const missing = paths.filter((p) => !mapping.imageIdByFile.has(basename(p)));
  if (missing.length > 0) {
    throw new UsageError(
      `--categories ${mapping.source}: ${missing.length} input(s) are not images of it (matched by file name): ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`,
    );
  }
  return paths.map((p) => getOrThrow(mapping.imageIdByFile, basename(p), `--categories ${mapping.source}: image ids`));
}

/** Results with the ground truth's category ids; instances of prompts it does not name are left out. */
export function withDatasetCategories(
  results: readonly CocoInstanceJson[],
  mapping: CategoryMapping,
): CocoInstanceJson[] {
  return results.flatMap((r) => {
    const id = mapping.idByName.get(r.prompt);
    return id === undefined ? [] : [{ ...r, category_id: id }];
  });
}
