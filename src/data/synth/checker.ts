import { join } from 'node:path';
import { inspectImage } from '../../io/image-header.js';
import { readGrayPng } from '../../io/image-node.js';
import { BoundedReadError, readRegularFile } from '../../io/bounded-file.js';
import { DEFAULT_MAX_BYTES } from '../../io/image-types.js';
import { assertRleValid, decodeRle, encodeRle, rleArea, rleToBbox, type Rle } from '../../structures/rle.js';
import { decompressRle } from '../../structures/rle-string.js';
import {
  IGNORE_LABEL,
  SYNTH_CATEGORIES,
  categoryById,
  categoryId,
  isThingColor,
  isThingSize,
  type StuffKind,
  type ThingColor,
  type ThingShape,
  type ThingSize,
} from './categories.js';
import { IssueList, TooManyIssues, type CheckIssue } from './check-issues.js';
import { DATASET_FILES, SEGMENT_CATEGORY, type CocoImage } from './formats.js';
import { connectedPieces } from './pieces.js';
import {
  SENTENCE_KINDS,
  normalizeSentence,
  parseQuery,
  resolveQuery,
  type RefThing,
  type SentenceKind,
} from './referring.js';
import { buildSceneGraph } from './scene-graph.js';
import { getOrThrow, required } from '../../util/checked.js';

export interface CheckOptions {
  /** Stop after this many issues (default 20). */
  maxIssues?: number;
}

export interface DatasetStats {
  images: number;
  things: number;
  /** Stuff annotations (one per stuff class per image). */
  stuff: number;
  /** Connected stuff pieces large enough to be referred to. */
  stuffPieces: number;
  /** Images where some stuff class is split into two or more referable pieces. */
  imagesWithSplitStuff: number;
  thingsPerImage: { min: number; mean: number; max: number };
  thingsByCategory: Record<string, number>;
  thingsByColor: Record<string, number>;
  thingsBySize: Record<string, number>;
  /** Images in which each stuff class appears. */
  stuffImagesByCategory: Record<string, number>;
  groundingObjects: number;
  sentences: number;
  sentencesByKind: Record<SentenceKind, number>;
  segments: number;
}

export interface CheckReport {
  ok: boolean;
  issues: CheckIssue[];
  stats: DatasetStats;
}

/** JSON files are our own output; this bounds what a stray or hostile file can make us allocate. */
const MAX_JSON_BYTES = 1 << 30;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function readJson(dir: string, name: string, issues: IssueList): Promise<Json | undefined> {
  const path = join(dir, name);
  let text: string;
  try {
    text = Buffer.from(await readRegularFile(path, MAX_JSON_BYTES)).toString('utf8');
  } catch (error) {
    if (!(error instanceof BoundedReadError)) throw error;
    issues.add(name, 'file', '-', error.reason === 'missing' ? `missing (${path})` : error.detail);
    return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    issues.add(name, 'file', '-', `not valid JSON: ${(error as Error).message}`);
    return undefined;
  }
  if (!isObject(value)) {
    issues.add(name, 'file', '-', 'top level is not a JSON object');
    return undefined;
  }
  for (const key of ['images', 'categories', 'annotations']) {
    if (!Array.isArray(value[key])) {
      issues.add(name, 'file', key, 'missing or not an array');
      return undefined;
    }
  }
  return value;
}

/** Validates the image records of a file; returns them by id (only the well-formed ones). */
function checkImageRecords(file: string, records: unknown[], issues: IssueList): Map<number, CocoImage> {
  const byId = new Map<number, CocoImage>();
  records.forEach((r, index) => {
    const where = isObject(r) && r.id !== undefined ? `image id ${show(r.id)}` : `image #${index}`;
    if (!isObject(r)) return issues.add(file, where, '-', 'not an object');
    if (!isPositiveInt(r.id)) return issues.add(file, where, 'id', `${show(r.id)} is not a positive integer`);
    if (byId.has(r.id)) return issues.add(file, where, 'id', `duplicate image id ${r.id}`);
    if (typeof r.file_name !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(r.file_name) || r.file_name.startsWith('.')) {
      return issues.add(file, where, 'file_name', `${show(r.file_name)} is not a plain file name`);
    }
    if (!isPositiveInt(r.width)) return issues.add(file, where, 'width', `${show(r.width)} is not a positive integer`);
    if (!isPositiveInt(r.height))
      return issues.add(file, where, 'height', `${show(r.height)} is not a positive integer`);
    byId.set(r.id, { id: r.id, file_name: r.file_name, width: r.width, height: r.height });
  });
  return byId;
}

/** Another file's image list must be the same images as instances.json's. */
function checkSameImages(file: string, records: unknown[], reference: Map<number, CocoImage>, issues: IssueList): void {
  const own = checkImageRecords(file, records, issues);
  for (const [id, img] of own) {
    const ref = reference.get(id);
    if (ref === undefined) issues.add(file, `image id ${id}`, 'id', `not in ${DATASET_FILES.instances}`);
    else if (ref.file_name !== img.file_name || ref.width !== img.width || ref.height !== img.height) {
      issues.add(
        file,
        `image id ${id}`,
        'file_name/width/height',
        `${show(img)} differs from ${DATASET_FILES.instances}: ${show(ref)}`,
      );
    }
  }
  for (const id of reference.keys())
    if (!own.has(id)) issues.add(file, `image id ${id}`, 'id', `in ${DATASET_FILES.instances} but missing here`);
}

function checkCategories(file: string, records: unknown[], issues: IssueList): void {
  const expected = new Map(SYNTH_CATEGORIES.map((c) => [c.id, c]));
  const seen = new Set<number>();
  records.forEach((r, index) => {
    const where = isObject(r) && r.id !== undefined ? `category id ${show(r.id)}` : `category #${index}`;
    if (!isObject(r)) return issues.add(file, where, '-', 'not an object');
    const want = isPositiveInt(r.id) ? expected.get(r.id) : undefined;
    if (want === undefined)
      return issues.add(file, where, 'id', `${show(r.id)} is not a category of the synthetic world`);
    if (seen.has(want.id)) return issues.add(file, where, 'id', `duplicate category id ${want.id}`);
    seen.add(want.id);
    if (r.name !== want.name) issues.add(file, where, 'name', `${show(r.name)}, expected "${want.name}"`);
    if (r.isthing !== want.isthing) issues.add(file, where, 'isthing', `${show(r.isthing)}, expected ${want.isthing}`);
  });
  for (const c of SYNTH_CATEGORIES)
    if (!seen.has(c.id)) issues.add(file, `category id ${c.id}`, 'id', `category "${c.name}" is missing`);
}

interface CheckedAnnotation {
  record: Json;
  id: number;
  imageId: number;
  categoryId: number;
  rle: Rle;
  where: string;
}

/**
 * The checks every annotation gets: unique id, known image and category, iscrowd 0, a compressed
 * RLE of the image's size, area = pixel count, bbox = rleToBbox. Returns the usable annotations
 * grouped by image id.
 */
function checkAnnotations(
  file: string,
  records: unknown[],
  images: Map<number, CocoImage>,
  isCategory: (id: number) => boolean,
  issues: IssueList,
): Map<number, CheckedAnnotation[]> {
  const byImage = new Map<number, CheckedAnnotation[]>();
  const seen = new Set<number>();
  records.forEach((r, index) => {
    const where = isObject(r) && r.id !== undefined ? `annotation id ${show(r.id)}` : `annotation #${index}`;
    if (!isObject(r)) return issues.add(file, where, '-', 'not an object');
    if (!isPositiveInt(r.id)) return issues.add(file, where, 'id', `${show(r.id)} is not a positive integer`);
    if (seen.has(r.id)) return issues.add(file, where, 'id', `duplicate annotation id ${r.id}`);
    seen.add(r.id);
    const image = isPositiveInt(r.image_id) ? images.get(r.image_id) : undefined;
    if (image === undefined)
      return issues.add(file, where, 'image_id', `${show(r.image_id)} is not an image of this file`);
    if (!isPositiveInt(r.category_id) || !isCategory(r.category_id))
      return issues.add(file, where, 'category_id', `${show(r.category_id)} is not a category of this file`);
    if (r.iscrowd !== 0) issues.add(file, where, 'iscrowd', `${show(r.iscrowd)}, expected 0`);
    const seg = r.segmentation;
    if (!isObject(seg) || typeof seg.counts !== 'string' || !Array.isArray(seg.size)) {
      return issues.add(file, where, 'segmentation', 'not a compressed RLE {size: [h, w], counts: string}');
    }
    if (seg.size.length !== 2 || seg.size[0] !== image.height || seg.size[1] !== image.width) {
      return issues.add(
        file,
        where,
        'segmentation.size',
        `${show(seg.size)} but image ${image.id} is ${image.height}x${image.width} (h x w)`,
      );
    }
    let rle: Rle;
    try {
      rle = decompressRle({ size: [image.height, image.width], counts: seg.counts });
      assertRleValid(rle, 'counts');
    } catch (error) {
      return issues.add(file, where, 'segmentation.counts', (error as Error).message);
    }
    const area = rleArea(rle);
    if (area === 0) issues.add(file, where, 'segmentation', 'empty mask');
    if (r.area !== area) issues.add(file, where, 'area', `${show(r.area)} but the mask has ${area} pixels`);
    const box = rleToBbox(rle);
    if (!Array.isArray(r.bbox) || !sameNumbers(r.bbox as number[], box)) {
      issues.add(file, where, 'bbox', `${show(r.bbox)} but the mask extent is ${show(box)}`);
    }
    const list = byImage.get(image.id) ?? [];
    list.push({ record: r, id: r.id, imageId: image.id, categoryId: r.category_id, rle, where });
    byImage.set(image.id, list);
  });
  return byImage;
}

function emptyStats(): DatasetStats {
  return {
    images: 0,
    things: 0,
    stuff: 0,
    stuffPieces: 0,
    imagesWithSplitStuff: 0,
    thingsPerImage: { min: 0, mean: 0, max: 0 },
    thingsByCategory: {},
    thingsByColor: {},
    thingsBySize: {},
    stuffImagesByCategory: {},
    groundingObjects: 0,
    sentences: 0,
    sentencesByKind: { attribute: 0, spatial: 0, ordinal: 0, stuff: 0 },
    segments: 0,
  };
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/**
 * Verifies a split written by writeSynthDataset: every file present and well-formed; ids unique;
 * image files exist with the recorded sizes; boxes and areas equal to their masks; instance masks
 * disjoint and in agreement with the semantic PNGs pixel by pixel; every sentence parses, matches
 * its kind and, re-resolved against the annotations with the generator's semantics, names exactly
 * the object its annotation holds; segments are disjoint and each one a whole object or stuff piece.
 */
export async function checkDataset(dir: string, options: CheckOptions = {}): Promise<CheckReport> {
  const issues = new IssueList(options.maxIssues ?? 20);
  const stats = emptyStats();
  try {
    await runChecks(dir, issues, stats);
  } catch (error) {
    if (!(error instanceof TooManyIssues)) throw error;
  }
  return { ok: issues.issues.length === 0, issues: issues.issues, stats };
}

async function runChecks(dir: string, issues: IssueList, stats: DatasetStats): Promise<void> {
  const F = DATASET_FILES;
  const instances = await readJson(dir, F.instances, issues);
  const grounding = await readJson(dir, F.grounding, issues);
  const segments = await readJson(dir, F.segments, issues);
  const semanticIndex = await readSemanticIndex(dir, issues);
  if (!instances) return;

  const images = checkImageRecords(F.instances, instances.images as unknown[], issues);
  checkCategories(F.instances, instances.categories as unknown[], issues);
  for (const img of images.values()) {
    const where = `image id ${img.id}`;
    const rel = `${F.images}/${img.file_name}`;
    let bytes: Uint8Array;
    try {
      bytes = await readRegularFile(join(dir, rel), DEFAULT_MAX_BYTES);
    } catch (error) {
      if (!(error instanceof BoundedReadError)) throw error;
      issues.add(
        F.instances,
        where,
        'file_name',
        error.reason === 'missing' ? `${rel} does not exist` : `${rel}: ${error.detail}`,
      );
      continue;
    }
    try {
      const header = inspectImage(bytes, { source: rel });
      if (header.format !== 'png')
        issues.add(F.instances, where, 'file_name', `${rel} is ${header.format}, expected png`);
      if (header.width !== img.width || header.height !== img.height) {
        issues.add(
          F.instances,
          where,
          'width/height',
          `${img.width}x${img.height} but ${rel} is ${header.width}x${header.height}`,
        );
      }
    } catch (error) {
      issues.add(F.instances, where, 'file_name', (error as Error).message);
    }
  }

  const isSynthCategory = (id: number) => categoryById(id) !== undefined;
  const instanceAnns = checkAnnotations(
    F.instances,
    instances.annotations as unknown[],
    images,
    isSynthCategory,
    issues,
  );
  let groundingAnns = new Map<number, CheckedAnnotation[]>();
  if (grounding) {
    checkSameImages(F.grounding, grounding.images as unknown[], images, issues);
    checkCategories(F.grounding, grounding.categories as unknown[], issues);
    groundingAnns = checkAnnotations(F.grounding, grounding.annotations as unknown[], images, isSynthCategory, issues);
  }
  let segmentAnns = new Map<number, CheckedAnnotation[]>();
  if (segments) {
    checkSameImages(F.segments, segments.images as unknown[], images, issues);
    segmentAnns = checkAnnotations(
      F.segments,
      segments.annotations as unknown[],
      images,
      (id) => id === SEGMENT_CATEGORY.id,
      issues,
    );
  }
  const semanticFiles = semanticIndex ? checkSemanticIndex(semanticIndex, images, issues) : new Map<number, string>();

  let thingCountSum = 0;
  let minThings = Infinity;
  let maxThings = 0;
  for (const img of [...images.values()].sort((a, b) => a.id - b.id)) {
    const anns = instanceAnns.get(img.id) ?? [];
    const thingCount = await checkImage(
      dir,
      img,
      anns,
      semanticFiles.get(img.id),
      groundingAnns.get(img.id) ?? [],
      segmentAnns.get(img.id) ?? [],
      issues,
      stats,
    );
    thingCountSum += thingCount;
    minThings = Math.min(minThings, thingCount);
    maxThings = Math.max(maxThings, thingCount);
  }
  stats.images = images.size;
  stats.thingsPerImage =
    images.size > 0
      ? { min: minThings, mean: thingCountSum / images.size, max: maxThings }
      : { min: 0, mean: 0, max: 0 };
}

async function readSemanticIndex(dir: string, issues: IssueList): Promise<Json | undefined> {
  const name = DATASET_FILES.semanticIndex;
  const path = join(dir, name);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(await readRegularFile(path, MAX_JSON_BYTES)).toString('utf8'));
  } catch (error) {
    const detail =
      error instanceof BoundedReadError
        ? error.reason === 'missing'
          ? `missing (${path})`
          : error.detail
        : `not valid JSON: ${(error as Error).message}`;
    issues.add(name, 'file', '-', detail);
    return undefined;
  }
  if (!isObject(value) || !Array.isArray(value.categories) || !Array.isArray(value.images)) {
    issues.add(name, 'file', 'categories/images', 'expected an object with "categories" and "images" arrays');
    return undefined;
  }
  return value;
}

/** semantic.json: ignore label, categories, and one label-map file per image; returns the files by image id. */
function checkSemanticIndex(index: Json, images: Map<number, CocoImage>, issues: IssueList): Map<number, string> {
  const file = DATASET_FILES.semanticIndex;
  if (index.ignore_label !== IGNORE_LABEL)
    issues.add(file, 'file', 'ignore_label', `${show(index.ignore_label)}, expected ${IGNORE_LABEL}`);
  checkCategories(file, index.categories as unknown[], issues);
  const files = new Map<number, string>();
  (index.images as unknown[]).forEach((r, i) => {
    const where = isObject(r) && r.id !== undefined ? `image id ${show(r.id)}` : `image #${i}`;
    if (!isObject(r) || !isPositiveInt(r.id) || !images.has(r.id))
      return issues.add(file, where, 'id', `not an image of ${DATASET_FILES.instances}`);
    if (files.has(r.id)) return issues.add(file, where, 'id', `duplicate image id ${r.id}`);
    const name = r.sem_seg_file_name;
    if (
      typeof name !== 'string' ||
      !new RegExp(`^${DATASET_FILES.semantic}/[A-Za-z0-9_-][A-Za-z0-9_.-]*$`).test(name)
    ) {
      return issues.add(
        file,
        where,
        'sem_seg_file_name',
        `${show(name)} is not a file under ${DATASET_FILES.semantic}/`,
      );
    }
    files.set(r.id, name);
  });
  for (const id of images.keys())
    if (!files.has(id)) issues.add(file, `image id ${id}`, 'sem_seg_file_name', 'no label map listed for this image');
  return files;
}

/** All per-image checks; returns the image's number of things. */
async function checkImage(
  dir: string,
  img: CocoImage,
  anns: CheckedAnnotation[],
  semanticFile: string | undefined,
  groundingAnns: CheckedAnnotation[],
  segmentAnns: CheckedAnnotation[],
  issues: IssueList,
  stats: DatasetStats,
): Promise<number> {
  const F = DATASET_FILES;
  const { width: w, height: h } = img;
  const expected = new Uint8Array(w * h).fill(IGNORE_LABEL);
  const owner = new Int32Array(w * h);
  const things: RefThing[] = [];
  const stuff: { kind: StuffKind; mask: Uint8Array }[] = [];
  const thingRles = new Map<number, Rle>();
  for (const a of anns) {
    const cat = required(categoryById(a.categoryId), `synth category ${a.categoryId}`);
    const mask = decodeRle(a.rle);
    for (let i = 0; i < mask.length; i++) {
      if (!mask[i]) continue;
      if (owner[i] !== 0) {
        issues.add(
          F.instances,
          a.where,
          'segmentation',
          `overlaps annotation id ${owner[i]} at pixel (${i % w}, ${Math.floor(i / w)})`,
        );
        break;
      }
      owner[i] = a.id;
      expected[i] = a.categoryId;
    }
    if (cat.isthing) {
      const attrs = a.record.attributes;
      if (
        !isObject(attrs) ||
        typeof attrs.color !== 'string' ||
        !isThingColor(attrs.color) ||
        typeof attrs.size !== 'string' ||
        !isThingSize(attrs.size)
      ) {
        issues.add(
          F.instances,
          a.where,
          'attributes',
          `${show(attrs)} is not {color: <colour name>, size: "small" | "large"}`,
        );
        continue;
      }
      things.push({
        id: a.id,
        shape: cat.name as ThingShape,
        color: attrs.color as ThingColor,
        size: attrs.size as ThingSize,
        bbox: rleToBbox(a.rle),
      });
      thingRles.set(a.id, a.rle);
      stats.things++;
      bump(stats.thingsByCategory, cat.name);
      bump(stats.thingsByColor, attrs.color);
      bump(stats.thingsBySize, attrs.size);
    } else {
      if (stuff.some((s) => s.kind === cat.name))
        issues.add(
          F.instances,
          a.where,
          'category_id',
          `second "${cat.name}" annotation in image ${img.id}; stuff is one annotation per class per image`,
        );
      stuff.push({ kind: cat.name as StuffKind, mask });
      stats.stuff++;
      bump(stats.stuffImagesByCategory, cat.name);
    }
  }

  if (semanticFile !== undefined) {
    try {
      const label = await readGrayPng(join(dir, semanticFile));
      if (label.width !== w || label.height !== h) {
        issues.add(semanticFile, `image id ${img.id}`, 'size', `${label.width}x${label.height}, image is ${w}x${h}`);
      } else {
        let first = -1;
        let wrong = 0;
        for (let i = 0; i < expected.length; i++) {
          if (label.data[i] !== expected[i]) {
            if (first < 0) first = i;
            wrong++;
          }
        }
        if (first >= 0) {
          issues.add(
            semanticFile,
            `image id ${img.id}`,
            `pixel (${first % w}, ${Math.floor(first / w)})`,
            `is ${label.data[first]} but ${F.instances} says ${expected[first]}${owner[first] ? ` (annotation id ${owner[first]})` : ' (no annotation)'}; ${wrong} pixels differ`,
          );
        }
      }
    } catch (error) {
      issues.add(semanticFile, `image id ${img.id}`, '-', (error as Error).message);
    }
  }

  const { graph, pieceMasks } = buildSceneGraph(w, h, things, stuff);
  stats.stuffPieces += graph.pieces.length;
  const kinds = graph.pieces.map((p) => p.stuff);
  if (kinds.some((k, i) => kinds.indexOf(k) !== i)) stats.imagesWithSplitStuff++;

  for (const g of groundingAnns) checkGroundingAnnotation(g, graph, pieceMasks, thingRles, issues, stats);

  const wholeMasks = new Set<string>([...thingRles.values()].map((r) => r.counts.join(',')));
  for (const s of stuff)
    for (const p of connectedPieces(s.mask, h, w)) wholeMasks.add(encodeRle(p.mask, h, w).counts.join(','));
  const segOwner = new Int32Array(w * h);
  for (const s of segmentAnns) {
    stats.segments++;
    if (!wholeMasks.has(s.rle.counts.join(',')))
      issues.add(
        F.segments,
        s.where,
        'segmentation',
        'is neither a whole object nor a whole stuff piece of this image',
      );
    const mask = decodeRle(s.rle);
    for (let i = 0; i < mask.length; i++) {
      if (!mask[i]) continue;
      if (segOwner[i] !== 0) {
        issues.add(
          F.segments,
          s.where,
          'segmentation',
          `overlaps segment id ${segOwner[i]} at pixel (${i % w}, ${Math.floor(i / w)})`,
        );
        break;
      }
      segOwner[i] = s.id;
    }
  }
  return things.length;
}

function checkGroundingAnnotation(
  g: CheckedAnnotation,
  graph: ReturnType<typeof buildSceneGraph>['graph'],
  pieceMasks: Uint8Array[],
  thingRles: Map<number, Rle>,
  issues: IssueList,
  stats: DatasetStats,
): void {
  const file = DATASET_FILES.grounding;
  const sentences = g.record.sentences;
  stats.groundingObjects++;
  if (!Array.isArray(sentences) || sentences.length === 0) {
    issues.add(file, g.where, 'sentences', 'missing or empty');
    return;
  }
  sentences.forEach((s: unknown, k) => {
    const field = `sentences[${k}]`;
    if (!isObject(s) || typeof s.raw !== 'string' || typeof s.sent !== 'string' || typeof s.kind !== 'string') {
      return issues.add(file, g.where, field, 'expected {raw: string, sent: string, kind: string}');
    }
    stats.sentences++;
    if (!(SENTENCE_KINDS as readonly string[]).includes(s.kind))
      return issues.add(file, g.where, `${field}.kind`, `${show(s.kind)} is not one of ${SENTENCE_KINDS.join(', ')}`);
    stats.sentencesByKind[s.kind as SentenceKind]++;
    if (normalizeSentence(s.raw) !== s.sent)
      issues.add(
        file,
        g.where,
        `${field}.sent`,
        `${show(s.sent)} is not the normalised raw sentence ${show(normalizeSentence(s.raw))}`,
      );
    let query: ReturnType<typeof parseQuery>;
    try {
      query = parseQuery(s.sent);
    } catch (error) {
      return issues.add(file, g.where, `${field}.sent`, (error as Error).message);
    }
    if (query.kind !== s.kind)
      issues.add(file, g.where, `${field}.kind`, `"${s.kind}" but the sentence is of kind "${query.kind}"`);
    const resolution = resolveQuery(query, graph);
    if (!resolution.ok)
      return issues.add(
        file,
        g.where,
        `${field}.sent`,
        `"${s.sent}" does not name exactly one object: ${resolution.reason}`,
      );
    const ref = resolution.referent;
    const refRle =
      ref.type === 'thing'
        ? getOrThrow(thingRles, ref.thing.id, `${file}: the masks of things`)
        : encodeRle(pieceMasks[ref.piece.index]!, graph.height, graph.width);
    const refCategory = ref.type === 'thing' ? categoryId(ref.thing.shape) : categoryId(ref.piece.stuff);
    const refName =
      ref.type === 'thing'
        ? `instance annotation id ${ref.thing.id}`
        : `the ${ref.piece.stuff} piece at ${show(ref.piece.bbox)}`;
    if (!sameNumbers(refRle.counts, g.rle.counts))
      issues.add(
        file,
        g.where,
        'segmentation',
        `"${s.sent}" names ${refName}, whose mask differs from this annotation's`,
      );
    if (refCategory !== g.categoryId)
      issues.add(
        file,
        g.where,
        'category_id',
        `${g.categoryId} but "${s.sent}" names ${refName} of category ${refCategory}`,
      );
    const instanceId = g.record.instance_id;
    if (ref.type === 'thing' ? instanceId !== ref.thing.id : instanceId !== undefined) {
      issues.add(file, g.where, 'instance_id', `${show(instanceId)} but "${s.sent}" names ${refName}`);
    }
  });
}
