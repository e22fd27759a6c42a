/**
 * `npm run bench -- towers [--large]`: forward (and forward+backward) time of the tiny EVA-02 ViT,
 * the simple feature pyramid and the tiny text tower on TF.js wasm, CLIP tokenizer throughput, and
 * parameter counts of the backbone / text-tower presets (`--large` also builds APE-D's ViT-L and
 * the EVA02-CLIP-E text tower on the cpu backend just to count them: several GB and a minute).
 */
import { fileURLToPath } from 'node:url';
import { tf, initEngine } from '../src/engine/engine.js';
import '../src/engine/gradients-node.js';
import { Eva02Vit, apeDVitConfig, apeTiVitConfig, tinyVitConfig } from '../src/modeling/backbone/eva02-vit.js';
import { SimpleFeaturePyramid, apePyramidConfig } from '../src/modeling/backbone/simple-feature-pyramid.js';
import { ClipTextEncoder, eva02ClipBigETextConfig, tinyTextConfig } from '../src/text/clip-text-transformer.js';
import { loadClipTokenizer } from '../src/text/clip-vocab-file.js';
import { Rng } from '../src/util/random.js';
import type { BenchResult } from './main.js';

/** Fastest of `runs` timed calls after two warm-ups (the least disturbed by other processes on a shared machine). */
function timeMs(runs: number, f: () => void): number {
  f();
  f();
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    f();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

export async function run(argv: string[]): Promise<BenchResult> {
  const results: Record<string, unknown> = {};
  await initEngine({ backend: 'wasm' });
  const rng = new Rng(0);

  const vit = new Eva02Vit(tinyVitConfig(), rng);
  const pyramid = new SimpleFeaturePyramid(apePyramidConfig(192, 128), rng);
  const image = tf.randomNormal([1, 256, 256, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  results.tinyVitParams = vit.parameterCount();
  results.tinyVitForwardMs = timeMs(10, () => tf.tidy(() => vit.forward(image).dataSync()));
  results.tinyVitPyramidForwardMs = timeMs(10, () =>
    tf.tidy(() => Object.values(pyramid.forward(vit.forward(image))).forEach((t) => t.dataSync())),
  );
  const vars = [...vit.trainableVariables(), ...pyramid.trainableVariables()];
  results.tinyVitPyramidForwardBackwardMs = timeMs(5, () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () =>
          tf.addN(
            Object.values(pyramid.forward(vit.forward(image, { training: true, rng }))).map((t) =>
              tf.mean(tf.square(t)),
            ),
          ) as tf.Scalar,
        vars,
      );
      value.dataSync();
      Object.values(grads).forEach((g) => g.dispose());
    }),
  );
  const image4 = tf.randomNormal([4, 256, 256, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
  results.tinyVitForwardBatch4Ms = timeMs(3, () => tf.tidy(() => vit.forward(image4).dataSync()));

  const tokenizer = await loadClipTokenizer(
    fileURLToPath(new URL('../../shared/vocab/clip_bpe_simple_vocab_16e6.txt.gz', import.meta.url)),
  );
  const words = [
    'person',
    'traffic light',
    'a man riding a horse on the beach',
    'teddy bear',
    'the small red car parked next to the old brick building',
    'aerosol_can',
    'bow_(weapon)',
    'potted plant',
  ];
  const prompts = Array.from({ length: 1000 }, (_, i) => `${words[i % words.length]} ${i}`);
  const t0 = performance.now();
  tokenizer.tokenize(prompts);
  results.clipTokenize1000PromptsMs = performance.now() - t0;

  const text = new ClipTextEncoder(tinyTextConfig(2000, 16, 128), rng);
  const rows = Array.from({ length: 32 }, (_, i) =>
    [1998, ...Array.from({ length: 2 + (i % 6) }, (_, j) => 1 + ((i * 7 + j) % 1900)), 1999]
      .concat(new Array(16).fill(0))
      .slice(0, 16),
  );
  results.tinyTextParams = text.parameterCount();
  results.tinyText32PromptsForwardMs = timeMs(10, () => tf.tidy(() => text.forward(rows).embeddings.dataSync()));

  const apeTi = new Eva02Vit(apeTiVitConfig(), rng);
  results.apeTiVitParams = apeTi.parameterCount();
  results.apePyramidParams = new SimpleFeaturePyramid(apePyramidConfig(192, 256), rng).parameterCount();
  results.apeTiVitForward1024Ms = timeMs(1, () =>
    tf.tidy(() => apeTi.forward(tf.randomNormal([1, 1024, 1024, 3]) as tf.Tensor4D).dataSync()),
  );

  if (argv.includes('--large')) {
    await initEngine({ backend: 'cpu' });
    const big = new Eva02Vit(apeDVitConfig(), rng);
    results.apeDVitParams = big.parameterCount();
    results.apeDPyramidParams = new SimpleFeaturePyramid(apePyramidConfig(1024, 256), rng).parameterCount();
    big.dispose();
    const bigText = new ClipTextEncoder(eva02ClipBigETextConfig(), rng);
    results.eva02ClipETextParams = bigText.parameterCount();
    bigText.dispose();
  }
  for (const [k, v] of Object.entries(results))
    console.log(`${k}: ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(1) : v}`);
  return { results };
}
