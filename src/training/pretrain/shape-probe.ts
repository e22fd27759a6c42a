import { join } from 'node:path';
import { tf } from '../../engine/engine.js';
import { collateBatch } from '../../data/batch.js';
import { augmentSample } from '../../data/mappers/augment.js';
import { DEFAULT_LOAD_OPTIONS, loadSample } from '../../data/mappers/load-sample.js';
import type { TrainingDataset } from '../../data/dataset.js';
import { openDataset } from '../../data/open-dataset.js';
import { defaultLossSwitches } from '../../data/sampler/loss-switches.js';
import { bestOf, ridgeFit } from '../../evaluation/ridge-probe.js';
import type { ApeNetwork } from '../../modeling/ape-network.js';
import { Rng } from '../../util/random.js';
import { objectPooling } from './dense-targets.js';

export interface ShapeProbeResult {
  /** Share of the test half's thing objects whose shape the probe names right. */
  accuracy: number;
  trainObjects: number;
  testObjects: number;
  level: string;
}

/**
 * How much shape the backbone carries: each thing object of a synthetic-world folder
 * (instances.json, images/) pooled over its mask on one pyramid level, a ridge linear probe fit
 * on the objects of the first half of the images and scored on the second half (accuracy of the
 * best thing class). Images are shown at scale 1 without flips or crops.
 */
export async function shapeProbe(
  network: ApeNetwork,
  dataDir: string,
  options: { images?: number; level?: string } = {},
): Promise<ShapeProbeResult> {
  const level = options.level ?? 'p3';
  const dataset = openProbeFolder(dataDir);
  const count = Math.min(options.images ?? 16, dataset.size);
  if (count < 2) throw new Error(`shape probe: ${dataDir} needs at least 2 images, has ${dataset.size}`);
  const size = network.config.input.size;
  const switches = defaultLossSwitches('detection', true, false);
  const things = dataset.prompts.flatMap((_, i) => (dataset.isThing[i] ? [i] : []));
  const rows: Array<{ image: number; feature: Float32Array; label: number }> = [];
  for (let i = 0; i < count; i++) {
    const raw = await loadSample(dataset, i, new Rng(i + 1), DEFAULT_LOAD_OPTIONS);
    const sample = augmentSample(raw, new Rng(i + 1), {
      size,
      flipProbability: 0,
      scaleRange: [1, 1],
      crop: false,
      minSize: 0,
    });
    const batch = collateBatch([sample], size, switches, dataset.name);
    const feature = tf.tidy(() => {
      const images = tf.tensor4d(batch.images, [1, size, size, 3]);
      const features = network.backbone.forward(network.normalize({ images, sizes: batch.sizes }));
      const f = features[level];
      if (!f)
        throw new Error(`shape probe: the backbone has no level '${level}' (${Object.keys(features).join(', ')})`);
      return f;
    });
    const [, h, w, c] = feature.shape;
    const cells = feature.dataSync() as Float32Array;
    feature.dispose();
    const pool = objectPooling(batch.targets, size, h, w);
    for (let k = 0; k < pool.count; k++) {
      const label = pool.labels[k]!;
      if (!dataset.isThing[label]) continue;
      const pooled = new Float32Array(c);
      for (let cell = 0; cell < h * w; cell++) {
        const share = pool.weights[k * h * w + cell]!;
        if (share > 0) for (let j = 0; j < c; j++) pooled[j]! += share * cells[cell * c + j]!;
      }
      rows.push({ image: i, feature: pooled, label });
    }
  }
  const half = Math.ceil(count / 2);
  const train = rows.filter((r) => r.image < half);
  const test = rows.filter((r) => r.image >= half);
  if (train.length === 0 || test.length === 0)
    throw new Error(`shape probe: no thing objects in one half of the ${count} images of ${dataDir}`);
  const probe = ridgeFit(
    train.map((r) => r.feature),
    train.map((r) => r.label),
    dataset.prompts.length,
  );
  const right = test.filter((r) => bestOf(probe.predict(r.feature), things) === r.label).length;
  return { accuracy: right / test.length, trainObjects: train.length, testObjects: test.length, level };
}

/** The detection set of a synthetic-world folder (instances.json, images/). */
export function openProbeFolder(dataDir: string): TrainingDataset {
  return openDataset({
    name: 'probe',
    type: 'detection',
    annotations: join(dataDir, 'instances.json'),
    imageRoot: join(dataDir, 'images'),
    weight: 1,
  });
}
