import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initEngine } from '../src/engine/engine.js';
import type { ApeModel } from '../src/inference/ape-model.js';
import { loadModel } from '../src/inference/model-files.js';
import { option } from './options.js';

export interface ProbeInputs {
  modelDir: string;
  dataDir: string;
  /** Images to use (--images, default 16). */
  count: number;
  model: ApeModel;
  semantic: {
    categories: Array<{ id: number; name: string; isthing: number }>;
    images: Array<{ id: number; file_name: string; sem_seg_file_name: string }>;
  };
  /** Category names in semantic.json's order: the prompts, and the probes' classes. */
  names: string[];
  indexOfId: Map<number, number>;
  things: number[];
  stuff: number[];
}

/** The model and the synthetic-world folder of the diagnostic benches (probe, encoder-stages), from --model, --data, --images. */
export async function probeInputs(argv: string[]): Promise<ProbeInputs> {
  const modelDir = option(argv, '--model', 'models/default');
  const dataDir = option(argv, '--data', 'data/synth/val');
  const count = Number(option(argv, '--images', '16'));
  await initEngine({ backend: 'wasm' });
  const model = await loadModel(modelDir, { engine: 'tfjs' });
  const semantic = JSON.parse(readFileSync(join(dataDir, 'semantic.json'), 'utf8')) as ProbeInputs['semantic'];
  return {
    modelDir,
    dataDir,
    count,
    model,
    semantic,
    names: semantic.categories.map((c) => c.name),
    indexOfId: new Map(semantic.categories.map((c, i) => [c.id, i])),
    things: semantic.categories.flatMap((c, i) => (c.isthing ? [i] : [])),
    stuff: semantic.categories.flatMap((c, i) => (c.isthing ? [] : [i])),
  };
}
