import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCommandArgs } from './args.js';
import { encodePng } from '../io/image-node.js';
import { checkDataset, type DatasetStats } from '../data/synth/checker.js';
import { checkCocoInstancesFile } from '../data/check-coco.js';
import { formatIssue } from '../data/synth/check-issues.js';
import { renderDatasetPreview } from '../data/synth/preview.js';
import { writeSynthDataset } from '../data/synth/write-dataset.js';
import { Progress } from '../util/progress.js';
import { UsageError, type Command } from './command.js';

const usage = `usage:
  ape data synth --out DIR --images N --seed S [--size 256] [--min-objects 3] [--max-objects 8] [--overwrite]
      writes a synthetic split: images/, semantic/, instances.json, semantic.json,
      grounding.json, segments.json (same arguments -> same bytes); DIR must be new or
      empty unless --overwrite replaces the split in it
  ape data check DIR|FILE.json [--max-issues 20]
      verifies a split; exits 1 and names file, record and field of each problem. A COCO
      instances file (FILE.json, or a DIR with annotations.json as ape annotate writes it) is
      checked as training and evaluation read it: images, sizes, masks, areas, boxes, scores
  ape data show DIR --out SHEET.png [--images 8] [--columns 2]
      draws a contact sheet of the first images with masks, boxes, labels and sentences`;

function integer(value: string | undefined, name: string, fallback?: number, min = 0): number {
  if (value === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`);
    return fallback;
  }
  if (!/^-?\d+$/.test(value)) throw new UsageError(`--${name} must be an integer, got '${value}'`);
  const n = Number(value);
  if (n < min) throw new UsageError(`--${name} must be at least ${min}, got ${n}`);
  return n;
}

async function synth(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      images: { type: 'string' },
      seed: { type: 'string' },
      size: { type: 'string' },
      'min-objects': { type: 'string' },
      'max-objects': { type: 'string' },
      overwrite: { type: 'boolean' },
    },
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  if (values.out === undefined) throw new UsageError('--out is required');
  const images = integer(values.images, 'images', undefined, 1);
  const seed = integer(values.seed, 'seed', undefined, 0);
  const size = integer(values.size, 'size', 256, 16);
  const minObjects = integer(values['min-objects'], 'min-objects', 3, 0);
  const maxObjects = integer(values['max-objects'], 'max-objects', Math.max(8, minObjects), minObjects);
  const progress = images >= 20 ? new Progress({ total: images, label: 'synth', unit: 'img' }) : undefined;
  const summary = await writeSynthDataset(values.out, {
    images,
    seed,
    size,
    config: { minObjects, maxObjects },
    overwrite: values.overwrite ?? false,
    onImage: () => progress?.tick(),
  });
  progress?.finish();
  console.log(
    `wrote ${values.out}: ${summary.images} images ${size}x${size}, ${summary.things} things, ${summary.stuff} stuff regions, ` +
      `${summary.sentences} sentences on ${summary.groundingObjects} objects, ${summary.segments} segments`,
  );
  return 0;
}

export function formatStats(s: DatasetStats): string {
  const counts = (r: Record<string, number>) =>
    Object.entries(r)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
  return [
    `images: ${s.images}`,
    `things: ${s.things} (per image min ${s.thingsPerImage.min}, mean ${s.thingsPerImage.mean.toFixed(2)}, max ${s.thingsPerImage.max})`,
    `  by shape: ${counts(s.thingsByCategory)}`,
    `  by colour: ${counts(s.thingsByColor)}`,
    `  by size: ${counts(s.thingsBySize)}`,
    `stuff annotations: ${s.stuff}; referable pieces: ${s.stuffPieces}; images with a class in 2+ pieces: ${s.imagesWithSplitStuff}`,
    `  images per stuff class: ${counts(s.stuffImagesByCategory)}`,
    `grounding: ${s.sentences} sentences on ${s.groundingObjects} objects (${counts(s.sentencesByKind)})`,
    `segments: ${s.segments}`,
  ].join('\n');
}

async function check(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args: argv,
    options: { 'max-issues': { type: 'string' } },
    allowPositionals: true,
  });
  if (positionals.length !== 1) throw new UsageError('expected exactly one dataset folder');
  const dir = positionals[0]!;
  const maxIssues = integer(values['max-issues'], 'max-issues', 20, 1);
  const cocoFile = dir.endsWith('.json')
    ? dir
    : existsSync(join(dir, 'annotations.json')) && !existsSync(join(dir, 'instances.json'))
      ? join(dir, 'annotations.json')
      : undefined;
  if (cocoFile !== undefined) return checkCoco(cocoFile, maxIssues);
  const report = await checkDataset(dir, { maxIssues });
  if (!report.ok) {
    for (const issue of report.issues) console.error(formatIssue(issue));
    console.error(`${dir}: ${report.issues.length} problem${report.issues.length === 1 ? '' : 's'} found`);
    return 1;
  }
  console.log(`${dir}: OK\n${formatStats(report.stats)}`);
  return 0;
}

async function checkCoco(file: string, maxIssues: number): Promise<number> {
  const report = await checkCocoInstancesFile(file, { maxIssues });
  if (!report.ok) {
    for (const issue of report.issues) console.error(formatIssue(issue));
    console.error(`${file}: ${report.issues.length} problem${report.issues.length === 1 ? '' : 's'} found`);
    return 1;
  }
  const s = report.stats;
  const counts = Object.entries(s.byCategory)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  console.log(
    `${file}: OK\nimages: ${s.images}\ncategories: ${s.categories}\nannotations: ${s.annotations}${counts ? ` (${counts})` : ''}`,
  );
  return 0;
}

async function show(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args: argv,
    options: { out: { type: 'string' }, images: { type: 'string' }, columns: { type: 'string' } },
    allowPositionals: true,
  });
  if (positionals.length !== 1) throw new UsageError('expected exactly one dataset folder');
  if (values.out === undefined) throw new UsageError('--out is required');
  const sheet = await renderDatasetPreview(positionals[0]!, {
    images: integer(values.images, 'images', 8, 1),
    columns: integer(values.columns, 'columns', 2, 1),
  });
  await writeFile(values.out, await encodePng(sheet));
  console.log(`wrote ${values.out} (${sheet.width}x${sheet.height})`);
  return 0;
}

export const command: Command = {
  name: 'data',
  summary: 'make, check and preview datasets (the synthetic world)',
  usage,
  async run(argv) {
    const [sub, ...rest] = argv;
    switch (sub) {
      case 'synth':
        return synth(rest);
      case 'check':
        return check(rest);
      case 'show':
        return show(rest);
      default:
        throw new UsageError(sub === undefined ? 'missing sub-command' : `unknown sub-command '${sub}'`);
    }
  },
};
