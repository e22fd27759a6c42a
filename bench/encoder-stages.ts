/**
 * `npm run bench -- encoder-stages [--model DIR] [--data DIR] [--images 16]`: where the encoder
 * keeps or loses what the cells of the finest level (stride 8) are. The level's tokens are taken
 * at the encoder input (the neck's output) and after every fusion, deformable attention (its
 * residual sum) and whole layer (after the FFN and norms), by wrapping those modules' `forward`s;
 * a ridge linear probe per stage, fitted on the first half of the images and tested on the
 * second, classifies things among thing names and stuff among stuff names. Also the tokens' RMS
 * norm, to see how much each residual sum adds.
 */
import { join } from 'node:path';
import { tf } from '../src/engine/engine.js';
import { readGrayPng, readImage } from '../src/io/image-node.js';
import type { BenchResult } from './main.js';
import { probeInputs } from './probe-inputs.js';
import { bestOf, ridgeFit } from '../src/evaluation/ridge-probe.js';

type Forward = { forward: (...args: never[]) => unknown };

/** Wraps `obj.forward` to hand its (or `pick` of its) output to `sink` before returning it. */
function tap(
  obj: Forward,
  sink: (t: tf.Tensor3D) => void,
  pick: (out: unknown) => tf.Tensor3D = (out) => out as tf.Tensor3D,
): void {
  const original = obj.forward.bind(obj) as (...args: unknown[]) => unknown;
  (obj as { forward: (...args: unknown[]) => unknown }).forward = (...args: unknown[]) => {
    const out = original(...args);
    sink(pick(out));
    return out;
  };
}

export async function run(argv: string[]): Promise<BenchResult> {
  const { modelDir, dataDir, count, model, semantic, names, indexOfId, things, stuff } = await probeInputs(argv);

  const [h, w] = [model.config.input.size / 8, model.config.input.size / 8];
  let stages = new Map<string, number[][]>();
  const record = (stage: string) => (t: tf.Tensor3D) => {
    // The first level's tokens come first in the flattened sequence.
    stages.set(
      stage,
      tf.tidy(() => tf.reshape(tf.slice(t, [0, 0, 0], [1, h * w, -1]), [h * w, -1])).arraySync() as number[][],
    );
  };
  const encoder = model.transformer.encoder;
  // The input is the encoder's first argument, not an output.
  const encoderForward = encoder.forward.bind(encoder);
  encoder.forward = (query, ...rest) => {
    record('input')(query);
    return encoderForward(query, ...rest);
  };
  encoder.layers.forEach((layer, i) => {
    const fusion = encoder.vlLayers[i];
    if (fusion) tap(fusion, record(`${i + 1}. fusion`), (out) => (out as { v: tf.Tensor3D }).v);
    tap(layer.attention, record(`${i + 1}. attention`));
    tap(layer, record(`${i + 1}. layer`));
  });

  const cells: Array<{ image: number; label: number; features: Map<string, Float32Array> }> = [];
  for (const [k, entry] of semantic.images.slice(0, count).entries()) {
    const image = await readImage(join(dataDir, 'images', entry.file_name));
    const labels = await readGrayPng(join(dataDir, entry.sem_seg_file_name));
    stages = new Map();
    const input = tf.tensor4d(Float32Array.from(image.data), [1, image.height, image.width, 3]);
    model.forward({ images: input, sizes: [[image.height, image.width]] }, { vocabulary: names }, {}).dispose();
    input.dispose();
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const label = indexOfId.get(labels.data[(y * 8 + 4) * labels.width + x * 8 + 4]!);
        if (label === undefined) continue;
        cells.push({
          image: k,
          label,
          features: new Map([...stages].map(([stage, rows]) => [stage, Float32Array.from(rows[y * w + x]!)])),
        });
      }
    }
  }

  const half = Math.ceil(count / 2);
  const train = cells.filter((c) => c.image < half);
  const test = cells.filter((c) => c.image >= half);
  const rows: Array<{ stage: string; things: number; stuff: number; rms: number }> = [];
  console.log(
    `${modelDir} on ${count} images of ${dataDir}; probe accuracy of stride-8 tokens (chance ${(1 / things.length).toFixed(3)} / ${(1 / stuff.length).toFixed(3)})`,
  );
  for (const stage of cells[0]!.features.keys()) {
    const probe = ridgeFit(
      train.map((c) => c.features.get(stage)!),
      train.map((c) => c.label),
      names.length,
    );
    const accuracy = (group: number[]) => {
      const inGroup = test.filter((c) => group.includes(c.label));
      return (
        inGroup.filter((c) => bestOf(probe.predict(c.features.get(stage)!), group) === c.label).length /
        Math.max(1, inGroup.length)
      );
    };
    const rms = Math.sqrt(
      test.reduce((s, c) => s + c.features.get(stage)!.reduce((a, v) => a + v * v, 0), 0) / test.length,
    );
    rows.push({ stage, things: accuracy(things), stuff: accuracy(stuff), rms });
    console.log(
      `  ${stage.padEnd(14)} things ${rows.at(-1)!.things.toFixed(3)}  stuff ${rows.at(-1)!.stuff.toFixed(3)}  token RMS ${rms.toFixed(2)}`,
    );
  }
  model.dispose();
  return { results: { model: modelDir, data: dataDir, images: count, stages: rows } };
}
