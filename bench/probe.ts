/**
 * `npm run bench -- probe [--model DIR] [--data DIR] [--images 16]`: where a model's class
 * knowledge is, on a synthetic-world folder (semantic PNGs + instances):
 *  - prompt vectors: mean and largest cosine between different thing names and stuff names;
 *  - objects: of the ground-truth things some prediction covers (IoU > 0.5), the share whose best
 *    covering prediction is of the right name (among the thing names), and the names most often
 *    given wrongly;
 *  - box AP named and class-agnostic: each query keeps its best thing name; agnostic AP scores the
 *    same boxes with every thing one class, so the gap between the two is what naming costs;
 *  - cells of the mask level (stride 8): accuracy of a ridge linear probe (trained on the first
 *    half of the images, tested on the second) from the cell's mean colour, the backbone feature,
 *    the encoder memory and the pixel embedding, and of the model's own classifier applied to the
 *    pixel embedding; things ranked among thing names, stuff among stuff names.
 * A probe far above the classifier means the features hold what the heads do not use; a probe
 * near chance (1/8 things, 1/6 stuff) means the features do not hold it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../src/engine/engine.js';
import { readGrayPng, readImage } from '../src/io/image-node.js';
import { evaluateCoco } from '../src/evaluation/coco/evaluate.js';
import { parseCocoGroundTruth, parseCocoResults } from '../src/evaluation/coco/parse.js';
import { boxIou } from '../src/structures/box-iou.js';
import { xyxyToXywh } from '../src/structures/boxes.js';
import type { BenchResult } from './main.js';
import { probeInputs } from './probe-inputs.js';
import { bestOf, ridgeFit } from '../src/evaluation/ridge-probe.js';

/** instances.json as the probe reads it; the rest of the file goes to the COCO parser unread. */
type InstancesJson = Record<string, unknown> & {
  annotations: Array<{ image_id: number; category_id: number; bbox: number[] }>;
};

interface Cell {
  image: number;
  label: number;
  features: Record<string, Float32Array>;
}

export async function run(argv: string[]): Promise<BenchResult> {
  const { modelDir, dataDir, count, model, semantic, names, indexOfId, things, stuff } = await probeInputs(argv);
  const instances = JSON.parse(readFileSync(join(dataDir, 'instances.json'), 'utf8')) as InstancesJson;
  const isThing = (i: number) => things.includes(i);

  // Prompt vectors.
  const vectors = tf.tidy(() => {
    const e = model.encodePrompts(names);
    return tf.div(e, tf.norm(e, 2, 1, true)).arraySync() as number[][];
  });
  const cosines = (group: number[]) => {
    const values: number[] = [];
    for (const i of group)
      for (const j of group) if (i < j) values.push(vectors[i]!.reduce((s, v, k) => s + v * vectors[j]![k]!, 0));
    return { mean: values.reduce((s, v) => s + v, 0) / values.length, max: Math.max(...values) };
  };
  const promptCosine = { things: cosines(things), stuff: cosines(stuff) };
  const results: Record<string, unknown> = { model: modelDir, data: dataDir, images: count, promptCosine };

  const cells: Cell[] = [];
  let covered = 0;
  let named = 0;
  let objects = 0;
  /** "true name -> given name" counts of the covered shapes named wrong. */
  const confusions = new Map<string, number>();
  const images = semantic.images.slice(0, count);
  /** Each query's best thing detection, as COCO results. */
  const queryBest: Array<{ image_id: number; category_id: number; score: number; bbox: number[] }> = [];
  for (const [k, entry] of images.entries()) {
    const image = await readImage(join(dataDir, 'images', entry.file_name));
    const labels = await readGrayPng(join(dataDir, entry.sem_seg_file_name));
    let maps: Record<string, number[][][]> = {};
    const input = tf.tensor4d(Float32Array.from(image.data), [1, image.height, image.width, 3]);
    const out = model.forward(
      { images: input, sizes: [[image.height, image.width]] },
      { vocabulary: names },
      {
        pixelLogits: true,
        inspect: ({ backbone, memory, pixels }) => {
          maps = { backbone: backbone.arraySync()[0]!, memory: memory.arraySync()[0]!, pixels: pixels.arraySync()[0]! };
        },
      },
    );
    // Cells on the backbone's grid; a finer map (a stride-4 mask feature's pixels and logits) is
    // read at the cell centre's own cell.
    const [lh, lw] = out.pixelLogits!.grid;
    const logits = out.pixelLogits!.logits.arraySync()[0]!;
    out.dispose();
    input.dispose();
    const h = maps.backbone!.length;
    const w = maps.backbone![0]!.length;
    const stride = image.height / h;
    /** Row (or column) of a grid of `cells` over `extent` pixels that holds pixel p. */
    const cellOf = (p: number, cells: number, extent: number) => Math.floor((p * cells) / extent);
    const at = (map: number[][][], py: number, px: number) =>
      map[cellOf(py, map.length, image.height)]![cellOf(px, map[0]!.length, image.width)]!;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const py = Math.floor((y + 0.5) * stride);
        const px = Math.floor((x + 0.5) * stride);
        if (py >= labels.height || px >= labels.width) continue;
        const label = indexOfId.get(labels.data[py * labels.width + px]!);
        if (label === undefined) continue;
        const colour = new Float32Array(3);
        for (let dy = 0; dy < stride; dy++)
          for (let dx = 0; dx < stride; dx++)
            for (let c = 0; c < 3; c++)
              colour[c]! +=
                image.data[((y * stride + dy) * image.width + x * stride + dx) * 3 + c]! / (stride * stride);
        cells.push({
          image: k,
          label,
          features: {
            colour,
            backbone: Float32Array.from(maps.backbone![y]![x]!),
            memory: Float32Array.from(at(maps.memory!, py, px)),
            pixels: Float32Array.from(at(maps.pixels!, py, px)),
            classifier: Float32Array.from(logits[cellOf(py, lh, image.height) * lw + cellOf(px, lw, image.width)]!),
          },
        });
      }
    }

    const result = await model.predict(image, { vocabulary: names, threshold: 0 });
    const best = new Map<number, (typeof result.instances)[number]>();
    for (const p of result.instances) {
      if (!isThing(p.promptIndex)) continue;
      const held = best.get(p.query);
      if (!held || p.score > held.score) best.set(p.query, p);
    }
    for (const p of best.values())
      queryBest.push({
        image_id: entry.id,
        category_id: semantic.categories[p.promptIndex]!.id,
        score: p.score,
        bbox: xyxyToXywh(p.box),
      });
    for (const a of instances.annotations.filter((a) => a.image_id === entry.id)) {
      const label = indexOfId.get(a.category_id)!;
      if (!isThing(label)) continue;
      objects++;
      const box = [a.bbox[0]!, a.bbox[1]!, a.bbox[0]! + a.bbox[2]!, a.bbox[1]! + a.bbox[3]!] as [
        number,
        number,
        number,
        number,
      ];
      const over = result.instances.filter(
        (p) => p.promptIndex < names.length && isThing(p.promptIndex) && boxIou(p.box, box) > 0.5,
      );
      if (over.length === 0) continue;
      covered++;
      const given = over.reduce((b, p) => (p.score > b.score ? p : b)).promptIndex;
      const key = `${names[label]} -> ${names[given]}`;
      if (given === label) named++;
      else confusions.set(key, (confusions.get(key) ?? 0) + 1);
    }
  }
  const topConfusions = [...confusions].sort((a, b) => b[1] - a[1]).slice(0, 8);
  const boxAp = namedAndAgnosticAp(
    instances,
    queryBest,
    images.map((im) => im.id),
    things.map((i) => semantic.categories[i]!.id),
  );
  results.boxAp = boxAp;
  results.objects = {
    total: objects,
    covered,
    rightName: named,
    rightShare: covered ? named / covered : 0,
    topConfusions: Object.fromEntries(topConfusions),
  };

  const half = Math.ceil(images.length / 2);
  const train = cells.filter((c) => c.image < half);
  const test = cells.filter((c) => c.image >= half);
  const accuracy: Record<string, { things: number; stuff: number }> = {};
  for (const key of ['colour', 'backbone', 'memory', 'pixels', 'classifier']) {
    // The classifier's logits are scores already; the other features go through a probe.
    const probe =
      key === 'classifier'
        ? null
        : ridgeFit(
            train.map((c) => c.features[key]!),
            train.map((c) => c.label),
            names.length,
          );
    const right = { things: [0, 0], stuff: [0, 0] };
    for (const c of test) {
      const group = isThing(c.label) ? things : stuff;
      const tally = isThing(c.label) ? right.things : right.stuff;
      tally[1]!++;
      const scores = probe ? probe.predict(c.features[key]!) : c.features.classifier!;
      if (bestOf(scores, group) === c.label) tally[0]!++;
    }
    accuracy[key] = {
      things: right.things[0]! / Math.max(1, right.things[1]!),
      stuff: right.stuff[0]! / Math.max(1, right.stuff[1]!),
    };
  }
  results.cellAccuracy = accuracy;
  results.testCells = {
    things: test.filter((c) => isThing(c.label)).length,
    stuff: test.filter((c) => !isThing(c.label)).length,
  };

  console.log(`model ${modelDir} on ${count} images of ${dataDir}`);
  console.log(
    `prompt cosines: things mean ${promptCosine.things.mean.toFixed(2)} max ${promptCosine.things.max.toFixed(2)}; stuff mean ${promptCosine.stuff.mean.toFixed(2)} max ${promptCosine.stuff.max.toFixed(2)}`,
  );
  console.log(
    `objects: ${covered} of ${objects} covered at IoU 0.5, ${named} of them named right (${(100 * (covered ? named / covered : 0)).toFixed(1)}%; chance ${(100 / things.length).toFixed(1)}%)`,
  );
  console.log(
    `box AP, each query's best thing name: named ${boxAp.named.ap.toFixed(3)} (AP50 ${boxAp.named.ap50.toFixed(3)}), class-agnostic ${boxAp.agnostic.ap.toFixed(3)} (AP50 ${boxAp.agnostic.ap50.toFixed(3)})`,
  );
  console.log(`most frequent wrong names: ${topConfusions.map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`);
  console.log(
    `cell accuracy (things / stuff; chance ${(1 / things.length).toFixed(3)} / ${(1 / stuff.length).toFixed(3)}):`,
  );
  for (const [key, a] of Object.entries(accuracy))
    console.log(
      `  ${key.padEnd(10)} ${a.things.toFixed(3)} / ${a.stuff.toFixed(3)}${key === 'classifier' ? '   (the model itself)' : '   (ridge probe)'}`,
    );
  return { results };
}

/** Box AP of the detections with their names, and with every thing category merged into one. */
function namedAndAgnosticAp(
  instancesJson: InstancesJson,
  detections: Array<{ image_id: number; category_id: number; score: number; bbox: number[] }>,
  imageIds: number[],
  thingIds: number[],
) {
  const gt = parseCocoGroundTruth(instancesJson, 'instances.json');
  const named = evaluateCoco(gt, parseCocoResults(detections, gt), 'bbox', { imageIds, categoryIds: thingIds }).stats;
  const one = thingIds[0]!;
  const annotations = instancesJson.annotations
    .filter((a) => thingIds.includes(a.category_id))
    .map((a) => ({ ...a, category_id: one }));
  const gtOne = parseCocoGroundTruth({ ...instancesJson, annotations }, 'instances.json (things as one class)');
  const agnostic = evaluateCoco(
    gtOne,
    parseCocoResults(
      detections.map((d) => ({ ...d, category_id: one })),
      gtOne,
    ),
    'bbox',
    { imageIds, categoryIds: [one] },
  ).stats;
  return { named: { ap: named[0]!, ap50: named[1]! }, agnostic: { ap: agnostic[0]!, ap50: agnostic[1]! } };
}
