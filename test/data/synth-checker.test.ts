import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePng, readGrayPng } from '../../src/io/image-node.js';
import { writeSynthDataset } from '../../src/data/synth/write-dataset.js';
import { checkDataset, type CheckReport } from '../../src/data/synth/checker.js';
import { formatIssue } from '../../src/data/synth/check-issues.js';
import { categoryById } from '../../src/data/synth/categories.js';
import type { GroundingFile, InstancesFile } from '../../src/data/synth/formats.js';

let root: string;
let base: string;
let copies = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ape-synth-check-'));
  base = join(root, 'base');
  await writeSynthDataset(base, { images: 4, seed: 5, size: 96, config: { minObjects: 5, maxObjects: 8 } });
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

// biome-ignore lint/suspicious/noExplicitAny: the test walks parsed JSON of every shape
type Json = Record<string, any>;

/** Checks a copy of the base split after `mutate` has broken it. */
async function tampered(mutate: (dir: string) => Promise<void>): Promise<CheckReport> {
  const dir = join(root, `copy${copies++}`);
  await cp(base, dir, { recursive: true });
  await mutate(dir);
  return checkDataset(dir);
}

async function editJson(dir: string, name: string, edit: (j: Json) => void): Promise<void> {
  const j = JSON.parse(await readFile(join(dir, name), 'utf8')) as Json;
  edit(j);
  await writeFile(join(dir, name), JSON.stringify(j));
}

function hasIssue(report: CheckReport, file: string, record: string, field: string, message: RegExp): void {
  assert.equal(report.ok, false);
  const found = report.issues.find(
    (i) => i.file === file && i.record === record && i.field === field && message.test(i.message),
  );
  assert.ok(
    found,
    `no ${file} / ${record} / ${field} / ${message} among:\n${report.issues.map(formatIssue).join('\n')}`,
  );
}

test('the untouched split passes', async () => {
  assert.deepEqual((await checkDataset(base)).issues, []);
});

test('wrong bbox', async () => {
  const r = await tampered((d) =>
    editJson(d, 'instances.json', (j) => {
      j.annotations[0].bbox[2] += 1;
    }),
  );
  hasIssue(r, 'instances.json', 'annotation id 1', 'bbox', /but the mask extent is \[/);
  assert.equal(r.issues.length, 1);
});

test('wrong area', async () => {
  const r = await tampered((d) =>
    editJson(d, 'segments.json', (j) => {
      j.annotations[2].area += 1;
    }),
  );
  hasIssue(r, 'segments.json', 'annotation id 3', 'area', /but the mask has \d+ pixels/);
});

test('duplicate annotation id', async () => {
  const r = await tampered((d) =>
    editJson(d, 'instances.json', (j) => {
      j.annotations[1].id = j.annotations[0].id;
    }),
  );
  hasIssue(r, 'instances.json', 'annotation id 1', 'id', /duplicate annotation id 1/);
});

test('duplicate image id', async () => {
  const r = await tampered((d) =>
    editJson(d, 'grounding.json', (j) => {
      j.images[1].id = 1;
    }),
  );
  hasIssue(r, 'grounding.json', 'image id 1', 'id', /duplicate image id 1/);
});

test('missing image file', async () => {
  const r = await tampered((d) => unlink(join(d, 'images', '000001.png')));
  hasIssue(r, 'instances.json', 'image id 2', 'file_name', /images\/000001.png does not exist/);
  assert.equal(r.issues.length, 1);
});

test('image size that differs from the file', async () => {
  const r = await tampered((d) =>
    editJson(d, 'instances.json', (j) => {
      j.images[0].width = 97;
    }),
  );
  hasIssue(r, 'instances.json', 'image id 1', 'width/height', /97x96 but images\/000000.png is 96x96/);
});

test('ambiguous sentence', async () => {
  let edited = '';
  const r = await tampered(async (d) => {
    const inst = JSON.parse(await readFile(join(d, 'instances.json'), 'utf8')) as InstancesFile;
    await editJson(d, 'grounding.json', (j) => {
      // Find an image with two things of one shape and make one of its sentences name only the shape.
      for (const g of (j as GroundingFile).annotations) {
        const shapes = inst.annotations
          .filter((a) => a.image_id === g.image_id && a.attributes)
          .map((a) => categoryById(a.category_id)!.name);
        const repeated = shapes.find((s, i) => shapes.indexOf(s) !== i);
        if (repeated === undefined) continue;
        g.sentences[0] = { raw: `The ${repeated}.`, sent: `the ${repeated}`, kind: 'attribute' };
        edited = `annotation id ${g.id}`;
        return;
      }
      throw new Error('fixture has no image with a repeated shape');
    });
  });
  hasIssue(
    r,
    'grounding.json',
    edited,
    'sentences[0].sent',
    /does not name exactly one object: \d objects match '\w+'/,
  );
});

test('sentence that names another object than its mask', async () => {
  const r = await tampered((d) =>
    editJson(d, 'grounding.json', (j) => {
      const [a, b] = (j as GroundingFile).annotations.filter((g) => g.image_id === 1 && g.instance_id !== undefined);
      a!.segmentation = b!.segmentation;
      a!.area = b!.area;
      a!.bbox = b!.bbox;
    }),
  );
  hasIssue(
    r,
    'grounding.json',
    'annotation id 1',
    'segmentation',
    /names instance annotation id \d+, whose mask differs/,
  );
});

test('wrong sentence kind, unparsable sentence, raw and sent disagreeing', async () => {
  const r = await tampered((d) =>
    editJson(d, 'grounding.json', (j) => {
      const g = j.annotations[0];
      g.sentences = [
        { ...g.sentences[0], kind: g.sentences[0].kind === 'ordinal' ? 'spatial' : 'ordinal' },
        { raw: 'The thing over there.', sent: 'the thing over there', kind: 'attribute' },
        { ...g.sentences[0], raw: 'Something else.' },
      ];
    }),
  );
  hasIssue(r, 'grounding.json', 'annotation id 1', 'sentences[0].kind', /but the sentence is of kind/);
  hasIssue(r, 'grounding.json', 'annotation id 1', 'sentences[1].sent', /expected a shape .* at word 2 \('thing'\)/);
  hasIssue(
    r,
    'grounding.json',
    'annotation id 1',
    'sentences[2].sent',
    /is not the normalised raw sentence "something else"/,
  );
});

test('bad semantic pixel', async () => {
  const r = await tampered(async (d) => {
    const path = join(d, 'semantic', '000002.png');
    const label = await readGrayPng(path);
    const i = 10 * 96 + 20;
    label.data[i] = label.data[i] === 9 ? 10 : 9;
    await writeFile(path, await encodePng(label));
  });
  hasIssue(
    r,
    'semantic/000002.png',
    'image id 3',
    'pixel (20, 10)',
    /is \d+ but instances.json says \d+ \(annotation id \d+\); 1 pixels differ/,
  );
  assert.equal(r.issues.length, 1);
});

test('overlapping instance masks and a stuff class annotated twice', async () => {
  const r = await tampered((d) =>
    editJson(d, 'instances.json', (j) => {
      const stuffAnn = j.annotations.find((a: Json) => a.image_id === 1 && a.attributes === undefined);
      j.annotations.push({ ...stuffAnn, id: 9999 });
    }),
  );
  hasIssue(r, 'instances.json', 'annotation id 9999', 'segmentation', /overlaps annotation id \d+ at pixel/);
  hasIssue(r, 'instances.json', 'annotation id 9999', 'category_id', /second "\w+" annotation in image 1/);
});

test('missing file, broken JSON, segments that are not whole segments', async () => {
  const r1 = await tampered((d) => unlink(join(d, 'segments.json')));
  hasIssue(r1, 'segments.json', 'file', '-', /missing/);
  const r2 = await tampered((d) => writeFile(join(d, 'grounding.json'), '{"images": ['));
  hasIssue(r2, 'grounding.json', 'file', '-', /not valid JSON/);
  const r3 = await tampered((d) =>
    editJson(d, 'segments.json', (j) => {
      const inst = j.annotations.filter((a: Json) => a.image_id === 1);
      inst[0].segmentation = { size: inst[0].segmentation.size, counts: `0${inst[0].segmentation.counts.slice(1)}` };
    }),
  );
  assert.equal(r3.ok, false);
  assert.ok(
    r3.issues.some((i) => i.file === 'segments.json' && i.record === 'annotation id 1'),
    r3.issues.map(formatIssue).join('\n'),
  );
});

test('the issue limit stops a badly broken split early', async () => {
  const dir = join(root, `copy${copies++}`);
  await cp(base, dir, { recursive: true });
  await editJson(dir, 'instances.json', (j) => {
    for (const a of j.annotations) a.area = -1;
  });
  const r = await checkDataset(dir, { maxIssues: 3 });
  assert.equal(r.issues.length, 3);
  assert.equal(
    formatIssue(r.issues[0]!),
    `instances.json: annotation id 1: area: -1 but the mask has ${JSON.parse(await readFile(join(base, 'instances.json'), 'utf8')).annotations[0].area} pixels`,
  );
});
