import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSynthDataset } from '../../src/data/synth/write-dataset.js';
import type { GroundingFile, InstancesFile, SemanticIndexFile } from '../../src/data/synth/formats.js';
import { evaluateModel, evaluateModelVariants, type EvaluatedModel } from '../../src/evaluation/model-eval.js';
import type { PostprocessSettings, PredictOptions } from '../../src/inference/ape-model.js';
import type { Prediction } from '../../src/inference/results.js';
import { readGrayPng, readImage } from '../../src/io/image-node.js';
import type { RgbImage } from '../../src/io/image-types.js';

let root: string;
let instances: InstancesFile;
let grounding: GroundingFile;
let semanticIndex: SemanticIndexFile;
/** Image content hash -> image id, so that the oracle knows which image it is shown. */
const imageIds = new Map<string, number>();
/** Image id -> its semantic label PNG's pixels. */
const semanticTruth = new Map<number, Uint8Array>();

const hash = (image: RgbImage) => createHash('sha1').update(image.data).digest('hex');

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ape-model-eval-'));
  await writeSynthDataset(root, { images: 4, seed: 5, size: 96 });
  const json = async <T>(name: string) => JSON.parse(await readFile(join(root, name), 'utf8')) as T;
  instances = await json<InstancesFile>('instances.json');
  grounding = await json<GroundingFile>('grounding.json');
  semanticIndex = await json<SemanticIndexFile>('semantic.json');
  for (const im of instances.images) imageIds.set(hash(await readImage(join(root, 'images', im.file_name))), im.id);
  for (const im of semanticIndex.images)
    semanticTruth.set(im.id, (await readGrayPng(join(root, im.sem_seg_file_name))).data);
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

/**
 * A stand-in for the network that answers from the ground truth (every thing with its mask, the
 * semantic PNG, each sentence's own box), or labels every pixel background when `semantic` is
 * 'background' or a call's semanticBackground is 1e6 or more. It records the options of every
 * answer and counts the network passes (one per predict or predictVariantsOnEngine call).
 */
function oracle(semantic: 'truth' | 'background' = 'truth') {
  const calls: PredictOptions[] = [];
  let passes = 0;
  const answer = (image: RgbImage, options: PredictOptions): Prediction => {
    calls.push(options);
    const id = imageIds.get(hash(image))!;
    const names = options.vocabulary ?? [];
    const indexOfCategory = new Map(instances.categories.map((c) => [c.id, names.indexOf(c.name)]));
    const tasks = options.tasks ?? [];
    const prediction: Prediction = {
      width: image.width,
      height: image.height,
      prompts: [],
      instances: [],
      semantic: null,
      grounding: [],
      warnings: [],
    };
    if (tasks.includes('instances')) {
      prediction.instances = instances.annotations
        .filter((a) => a.image_id === id)
        .map((a, query) => ({
          prompt: '',
          promptIndex: indexOfCategory.get(a.category_id)!,
          kind: 'vocabulary',
          score: 1,
          query,
          box: [a.bbox[0], a.bbox[1], a.bbox[0] + a.bbox[2], a.bbox[1] + a.bbox[3]],
          mask: a.segmentation,
        }));
    }
    if (tasks.includes('semantic')) {
      const background = semantic === 'background' || (options.semanticBackground ?? 0) >= 1e6;
      const labels = Int32Array.from(semanticTruth.get(id)!, (v) => (background ? -1 : (indexOfCategory.get(v) ?? 0)));
      prediction.semantic = { width: image.width, height: image.height, labels, prompts: names };
    }
    if (tasks.includes('grounding')) {
      for (const a of grounding.annotations.filter((g) => g.image_id === id)) {
        for (const s of a.sentences) {
          if (!options.sentences?.includes(s.sent)) continue;
          prediction.grounding.push({
            sentence: s.sent,
            promptIndex: 0,
            score: 1,
            box: [a.bbox[0], a.bbox[1], a.bbox[0] + a.bbox[2], a.bbox[1] + a.bbox[3]],
            mask: null,
            query: 0,
          });
        }
      }
    }
    return prediction;
  };
  const model = {
    async predict(image: RgbImage, options: PredictOptions): Promise<Prediction> {
      passes++;
      return answer(image, options);
    },
    async predictVariantsOnEngine(
      images: RgbImage[],
      options: PredictOptions,
      variants: PostprocessSettings[],
    ): Promise<Prediction[][]> {
      passes++;
      return variants.map((v) => images.map((image) => answer(image, { ...options, ...v })));
    },
  };
  return { model: model as unknown as EvaluatedModel, calls, passes: () => passes };
}

test('evaluateModel: the ground truth as predictions scores box AP, mask AP, mIoU and referring precision of 1', async () => {
  const { model } = oracle();
  const r = await evaluateModel(model, root);
  assert.equal(r.images, 4);
  assert.equal(r.bbox.length, 12);
  assert.equal(r.segm.length, 12);
  assert.equal(r.bbox[0], 1);
  assert.equal(r.bbox[1], 1);
  assert.equal(r.segm[0], 1);
  assert.equal(r.miou, 1);
  assert.equal(r.referring_acc, 1);
  // Per category: things with ground truth score 1 everywhere, stuff has no AP, absent categories no numbers.
  assert.deepEqual(
    r.perCategory.map((c) => c.id),
    instances.categories.map((c) => c.id),
  );
  const present = new Set(instances.annotations.map((a) => a.category_id));
  const inSemantic = new Set([...semanticTruth.values()].flatMap((px) => [...new Set(px)]));
  for (const c of r.perCategory) {
    const raw = instances.categories.find((x) => x.id === c.id)!;
    assert.equal(c.isThing, raw.isthing === 1, c.name);
    for (const ap of [c.boxAp, c.maskAp]) {
      if (c.isThing && present.has(c.id)) assert.ok(Math.abs(ap! - 1) < 1e-12, `${c.name}: ${ap}`);
      else assert.equal(ap, null, c.name);
    }
    assert.equal(c.iou, inSemantic.has(c.id) ? 1 : null, c.name);
  }
  assert.ok(
    r.perCategory.some((c) => !c.isThing && c.iou === 1),
    'some stuff category is scored',
  );
});

test('evaluateModel: background everywhere scores mIoU 0; metrics and inference settings restrict and reach the predict calls; the vocabulary is prepared once, before the first image', async () => {
  const { model, calls, passes } = oracle('background');
  const prepared: { names: readonly string[]; passesBefore: number }[] = [];
  const r = await evaluateModel(model, root, {
    maxImages: 2,
    metrics: ['semantic'],
    settings: { nmsThreshold: 0.3, semanticTemperature: 0.5, semanticBackground: 0 },
    prepareVocabulary: async (names) => {
      prepared.push({ names, passesBefore: passes() });
    },
  });
  assert.deepEqual(prepared, [{ names: instances.categories.map((c) => c.name), passesBefore: 0 }]);
  assert.equal(r.images, 2);
  assert.equal(r.miou, 0);
  assert.deepEqual(r.bbox, new Array(12).fill(-1));
  assert.deepEqual(r.segm, new Array(12).fill(-1));
  assert.ok(Number.isNaN(r.referring_acc));
  assert.ok(r.perCategory.every((c) => c.boxAp === null && c.maskAp === null && (c.iou === null || c.iou === 0)));
  assert.ok(r.perCategory.some((c) => c.iou === 0));
  assert.equal(calls.length, 2);
  for (const c of calls) {
    assert.deepEqual(c.tasks, ['semantic']);
    assert.equal(c.semanticTemperature, 0.5);
    assert.equal(c.semanticBackground, 0);
    assert.equal(c.nmsThreshold, 0.3);
  }
});

test('evaluateModelVariants: one network pass per image serves every variant, each scored on its own', async () => {
  const { model, calls, passes } = oracle();
  const [shipped, background] = await evaluateModelVariants(
    model,
    root,
    { maxImages: 3, metrics: ['instances', 'semantic'] },
    [{}, { semanticBackground: 1e6, nmsThreshold: 0.4 }],
  );
  assert.equal(passes(), 3);
  assert.equal(calls.length, 6);
  assert.equal(shipped!.miou, 1);
  assert.equal(background!.miou, 0);
  // The instances do not depend on the background setting: both variants score AP 1.
  assert.equal(shipped!.bbox[0], 1);
  assert.equal(background!.bbox[0], 1);
  // Per image, the variants in order.
  assert.deepEqual(
    calls.map((c) => c.nmsThreshold),
    [undefined, 0.4, undefined, 0.4, undefined, 0.4],
  );
});
