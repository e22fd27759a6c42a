/**
 * `npm run bench -- inference-sweep [--model DIR] [--data DIR] [--images 50] [--nms 0.5,0.6,0.7]
 *  [--temperatures 0.02,0.06,0.2] [--backgrounds 0,0.1]`: box and mask AP for each class-wise NMS
 * threshold, and semantic mIoU for each pair of accumulation temperature and background channel,
 * of a model on a synthetic-world folder. It picks the values a model ships with
 * (`inference.nmsThreshold`, `.semanticTemperature`, `.semanticBackground`) on a validation
 * split, never on the test split. Each part runs the network once per image and decodes its
 * output once per setting (`evaluateModelVariants`).
 */
import { initEngine } from '../src/engine/engine.js';
import { evaluateModelVariants } from '../src/evaluation/model-eval.js';
import { loadModel } from '../src/inference/model-files.js';
import type { BenchResult } from './main.js';
import { option } from './options.js';

function numbers(argv: string[], flag: string, fallback: string): number[] {
  const text = option(argv, flag, fallback);
  // An empty list skips that part of the sweep.
  const values = text === '' ? [] : text.split(',').map(Number);
  if (values.some((v) => !Number.isFinite(v) || v < 0))
    throw new Error(`inference-sweep: ${flag} must be non-negative numbers separated by commas, got '${text}'`);
  return values;
}

const best = <T extends Record<string, number>>(rows: T[], key: keyof T): T =>
  rows.reduce((a, b) => (b[key]! > a[key]! ? b : a));

export async function run(argv: string[]): Promise<BenchResult> {
  const modelDir = option(argv, '--model', 'models/default');
  const dataDir = option(argv, '--data', 'data/synth/val');
  const maxImages = Number(option(argv, '--images', '50'));
  const nmsValues = numbers(argv, '--nms', '0.5,0.6,0.7');
  const temperatures = numbers(argv, '--temperatures', '0.02,0.06,0.2');
  const backgrounds = numbers(argv, '--backgrounds', '0,0.1');
  await initEngine({ backend: 'wasm' });
  const model = await loadModel(modelDir);
  const shipped = model.config.inference;
  console.log(
    `${modelDir} on ${dataDir} (${maxImages} images); shipped: nms ${shipped.nmsThreshold}, temperature ${shipped.semanticTemperature}, background ${shipped.semanticBackground}`,
  );

  const nms: Array<{ nmsThreshold: number; boxAP: number; maskAP: number }> = [];
  if (nmsValues.length > 0) {
    const results = await evaluateModelVariants(
      model,
      dataDir,
      { maxImages, metrics: ['instances'] },
      nmsValues.map((nmsThreshold) => ({ nmsThreshold })),
    );
    results.forEach((r, i) => {
      nms.push({ nmsThreshold: nmsValues[i]!, boxAP: r.bbox[0]!, maskAP: r.segm[0]! });
      console.log(`nms ${nmsValues[i]}  box AP ${r.bbox[0]!.toFixed(4)}  mask AP ${r.segm[0]!.toFixed(4)}`);
    });
  }
  const pairs = temperatures.flatMap((temperature) => backgrounds.map((background) => ({ temperature, background })));
  const semantic: Array<{ temperature: number; background: number; miou: number }> = [];
  if (pairs.length > 0) {
    const results = await evaluateModelVariants(
      model,
      dataDir,
      { maxImages, metrics: ['semantic'] },
      pairs.map((p) => ({ semanticTemperature: p.temperature, semanticBackground: p.background })),
    );
    results.forEach((r, i) => {
      semantic.push({ ...pairs[i]!, miou: r.miou });
      console.log(
        `temperature ${pairs[i]!.temperature}  background ${pairs[i]!.background}  mIoU ${r.miou.toFixed(4)}`,
      );
    });
  }
  const bestNms = nms.length ? best(nms, 'boxAP') : null;
  const bestSemantic = semantic.length ? best(semantic, 'miou') : null;
  if (bestNms) console.log(`best nms: ${bestNms.nmsThreshold} (box AP ${bestNms.boxAP.toFixed(4)})`);
  if (bestSemantic)
    console.log(
      `best semantic: temperature ${bestSemantic.temperature}, background ${bestSemantic.background} (mIoU ${bestSemantic.miou.toFixed(4)})`,
    );
  model.dispose();
  return { results: { model: modelDir, data: dataDir, images: maxImages, nms, semantic, bestNms, bestSemantic } };
}
