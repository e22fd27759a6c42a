/**
 * `npm run bench -- export-count [--size 256] [--max-sentences 8] [--seed 1] [--json PATH]`: how many
 * ONNX exports a mixed workload makes on the ort engine. The workload: the photo sizes of the 100
 * COCO val2014 images of ../shared/fixtures/coco-eval (examples/scene-2.png resized to each: the
 * content does not matter for the count), each with 14 names and a seeded number of sentences
 * from 0 to --max-sentences, predicted one at a time by the shipped tiny model on the ort engine
 * with an empty export cache. Reports the exports made (the cache's folders), the time spent
 * making them (the engine's own "exported in" lines) and the whole run, and, for the same
 * workload, the distinct valid regions and sentence counts, i.e. the exports the previous
 * exporter made: one per (valid region, exact sentence count), keyed size-HxW-vV-sS.
 */
import { parseArgs } from 'node:util';
import { loadavg, tmpdir } from 'node:os';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initEngine } from '../src/engine/engine.js';
import { loadModel } from '../src/inference/model-files.js';
import { resizedSize } from '../src/inference/preprocess.js';
import { readImage } from '../src/io/image-node.js';
import { resizeImageBilinear } from '../src/io/image-ops.js';
import { sentenceBucket } from '../src/modeling/sentence-buckets.js';
import { OrtEngine } from '../src/onnx/ort-engine.js';
import { Rng } from '../src/util/random.js';
import type { BenchResult } from './main.js';

const here = dirname(fileURLToPath(import.meta.url));
const VOCABULARY = 'circle,square,triangle,star,hexagon,ring,cross,heart,sky,grass,water,sand,wall,gravel'.split(',');
const SENTENCES = [
  'the red star',
  'the blue circle on the left',
  'a green triangle',
  'the sky above the grass',
  'the largest square',
  'a ring next to a cross',
  'the water at the bottom',
  'a small yellow heart',
  'the wall behind the sand',
  'two hexagons',
];

export async function run(argv: string[]): Promise<BenchResult> {
  const { values } = parseArgs({
    args: argv,
    options: {
      size: { type: 'string', default: '256' },
      'max-sentences': { type: 'string', default: '8' },
      seed: { type: 'string', default: '1' },
      json: { type: 'string' },
    },
  });
  const size = Number(values.size);
  const maxSentences = Number(values['max-sentences']);
  if (!(Number.isInteger(maxSentences) && maxSentences >= 0 && maxSentences <= SENTENCES.length))
    throw new Error(`--max-sentences must be 0 to ${SENTENCES.length}, got ${values['max-sentences']}`);
  await initEngine({ backend: 'wasm' });
  const fixture = JSON.parse(
    readFileSync(join(here, '..', '..', 'shared/fixtures/coco-eval/instances_val2014_100.json'), 'utf8'),
  ) as { images: { width: number; height: number }[] };
  const rng = new Rng(Number(values.seed));
  const workload = fixture.images.map(({ width, height }) => ({
    width,
    height,
    sentences: rng.int(0, maxSentences),
  }));

  const dir = join(here, '..', 'models/default');
  const model = await loadModel(dir, { engine: 'tfjs', inputSize: size });
  const cache = mkdtempSync(join(tmpdir(), 'ape-export-count-'));
  const exportSeconds: number[] = [];
  const engine = new OrtEngine(
    model,
    { dir, files: [join(dir, 'config.json'), join(dir, 'model.safetensors')] },
    {
      cacheDir: cache,
      onExport: (m) => {
        const made = /^exported in ([\d.]+) s/.exec(m);
        if (made) exportSeconds.push(Number(made[1]));
      },
    },
  );
  model.setInferenceRunner(engine);
  const scene = await readImage(join(here, '..', 'examples/scene-2.png'));
  const load = loadavg()[0]!;
  const t0 = performance.now();
  let instances = 0;
  try {
    for (const [i, item] of workload.entries()) {
      const image = resizeImageBilinear(scene, item.width, item.height);
      const prediction = await model.predict(image, {
        vocabulary: VOCABULARY,
        sentences: SENTENCES.slice(0, item.sentences),
      });
      instances += prediction.instances.length;
      if ((i + 1) % 20 === 0) console.error(`export-count: ${i + 1}/${workload.length} images`);
    }
  } finally {
    await engine.release();
    model.setInferenceRunner(null);
    model.dispose();
  }
  const totalSeconds = (performance.now() - t0) / 1000;
  const exports = readdirSync(cache).sort();
  rmSync(cache, { recursive: true, force: true });

  const validRegions = new Set(workload.map((w) => resizedSize(w.width, w.height, size).join('x')));
  const sentenceCounts = new Set(workload.map((w) => w.sentences));
  const previous = new Set(
    workload.map((w) => {
      const [rw, rh] = resizedSize(w.width, w.height, size);
      return `${size}-${rh}x${rw}-v0-s${w.sentences}`;
    }),
  );
  const buckets = new Set(workload.map((w) => sentenceBucket(w.sentences)));
  const results = {
    size,
    images: workload.length,
    maxSentences,
    loadAverage: Number(load.toFixed(1)),
    photoSizes: new Set(workload.map((w) => `${w.width}x${w.height}`)).size,
    validRegions: validRegions.size,
    sentenceCounts: sentenceCounts.size,
    sentenceBuckets: [...buckets].sort((a, b) => a - b),
    exports: exports.length,
    exportKeys: exports,
    previousExporterExports: previous.size,
    exportSeconds: Number(exportSeconds.reduce((a, b) => a + b, 0).toFixed(1)),
    totalSeconds: Number(totalSeconds.toFixed(1)),
    instances,
  };
  console.log(
    `${workload.length} photos (${results.photoSizes} sizes, ${results.validRegions} valid regions at ${size}) x 0-${maxSentences} sentences (${results.sentenceCounts} counts): ` +
      `${results.exports} exports (${exports.join(', ')}), ${results.exportSeconds} s exporting of ${results.totalSeconds} s; ` +
      `the previous exporter: ${results.previousExporterExports} exports (load average ${results.loadAverage})`,
  );
  return { results };
}
