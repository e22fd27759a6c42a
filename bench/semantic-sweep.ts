/**
 * `npm run bench -- semantic-sweep [--model DIR] [--data DIR] [--images 50]
 *  [--temperatures 0.02,0.06,0.2] [--backgrounds 0,0.05,0.1]`: semantic mIoU of a model on a
 * synthetic-world folder for each pair of accumulation temperature and background channel, to
 * pick the pair a model ships with (`inference.semanticTemperature`, `.semanticBackground`) on a
 * validation split, never on the test split.
 */
import { initEngine } from '../src/engine/engine.js';
import { evaluateModel } from '../src/evaluation/model-eval.js';
import { loadModel } from '../src/inference/model-files.js';
import type { BenchResult } from './main.js';
import { option } from './options.js';

function numbers(text: string, flag: string): number[] {
  const values = text.split(',').map(Number);
  if (values.length === 0 || values.some((v) => !Number.isFinite(v) || v < 0)) throw new Error(`semantic-sweep: ${flag} must be non-negative numbers separated by commas, got '${text}'`);
  return values;
}

export async function run(argv: string[]): Promise<BenchResult> {
  const modelDir = option(argv, '--model', 'models/default');
  const dataDir = option(argv, '--data', 'data/synth/val');
  const images = Number(option(argv, '--images', '50'));
  const temperatures = numbers(option(argv, '--temperatures', '0.02,0.06,0.2'), '--temperatures');
  const backgrounds = numbers(option(argv, '--backgrounds', '0,0.05,0.1'), '--backgrounds');
  await initEngine({ backend: 'wasm' });
  const model = await loadModel(modelDir);
  const shipped = model.config.inference;
  console.log(`${modelDir} on ${dataDir} (${images} images); shipped: temperature ${shipped.semanticTemperature}, background ${shipped.semanticBackground}`);
  const grid: Array<{ temperature: number; background: number; miou: number }> = [];
  for (const temperature of temperatures) {
    for (const background of backgrounds) {
      const r = await evaluateModel(model, dataDir, { maxImages: images, metrics: ['semantic'], semantic: { semanticTemperature: temperature, semanticBackground: background } });
      grid.push({ temperature, background, miou: r.miou });
      console.log(`temperature ${temperature}  background ${background}  mIoU ${r.miou.toFixed(4)}`);
    }
  }
  const best = grid.reduce((a, b) => (b.miou > a.miou ? b : a));
  console.log(`best: temperature ${best.temperature}, background ${best.background}, mIoU ${best.miou.toFixed(4)}`);
  model.dispose();
  return { results: { model: modelDir, data: dataDir, images, grid, best } };
}
