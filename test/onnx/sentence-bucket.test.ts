import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/engine.js';
import { loadModel } from '../../src/inference/model-files.js';
import { prepareImages } from '../../src/inference/preprocess.js';
import { readImage } from '../../src/io/image-node.js';
import type { RgbImage } from '../../src/io/image-types.js';
import { exportNetwork } from '../../src/onnx/export-network.js';
import { writeNetworkExport } from '../../src/onnx/export-files.js';
import { OrtNetwork } from '../../src/onnx/ort-network.js';
import { recordKernels } from '../../src/onnx/kernel-recorder.js';
import { VisionLanguageFusion } from '../../src/modeling/fusion/bi-attention.js';
import { Rng } from '../../src/util/random.js';
import { microConfig } from '../modeling/micro-config.js';
import { repoRoot } from '../cli/ape-cli.js';

import { relativeError } from './relative-error.js';

await initEngine();

test('the sentence bucket does not change a result: 3 sentences on an export for 4 equal an export for exactly 3 and the TF.js forward (square and padded images)', async () => {
  const model = await loadModel(join(repoRoot, 'models/default'));
  const dirs = [await mkdtemp(join(tmpdir(), 'ape-onnx-s3-')), await mkdtemp(join(tmpdir(), 'ape-onnx-s4-'))];
  try {
    const sentences = ['the red star', 'a blue circle', 'the sky'];
    const sent = model.encodePrompts(sentences);
    const nets: OrtNetwork[] = [];
    for (const [i, rows] of [3, 4].entries()) {
      await writeNetworkExport(dirs[i]!, exportNetwork(model, { size: 128, vocabulary: 0, sentences: rows }, 't'));
      nets.push(await OrtNetwork.load(dirs[i]!));
    }
    const [exact, bucket] = nets as [OrtNetwork, OrtNetwork];
    assert.equal(bucket.manifest.inputs.sentenceKeep, 'sentence_keep');
    const scene = await readImage(join(repoRoot, 'examples/scene-2.png'));
    // The top 160 rows: a 256x160 image, padded at the bottom.
    const wide = { width: 256, height: 160, data: scene.data.slice(0, 256 * 160 * 3) } as RgbImage;
    for (const image of [scene, wide]) {
      const { batch } = prepareImages([image], 128);
      const inputs = {
        image: batch.images.dataSync() as Float32Array,
        valid: batch.sizes[0]!,
        sentences: sent.dataSync() as Float32Array,
      };
      const a = await exact.run(inputs);
      const b = await bucket.run(inputs);
      const ref = model.forward(batch, { sentences }, { layers: 'last', masks: 'last', hidden: true });
      const last = ref.layers[0]!;
      const where = batch.sizes[0]!.join('x');
      // The padded row's column is dropped: 3 columns on both exports.
      assert.deepEqual(b.logits!.dims, last.logits.shape);
      assert.equal(last.logits.shape[2], 3);
      assert.deepEqual(Array.from(b.selected), Array.from(a.selected));
      assert.deepEqual(Array.from(a.selected), Array.from(ref.encoder.selected[0]!));
      for (const [name, x, y, t] of [
        ['logits', b.logits!.data, a.logits!.data, last.logits],
        ['hidden queries', b.hidden.data, a.hidden.data, last.hidden!],
        ['boxes', b.boxes.data, a.boxes.data, last.boxes],
        ['masks', b.masks.data, a.masks.data, last.masks!],
      ] as const) {
        const bucketVsExact = relativeError(x, y);
        assert.ok(bucketVsExact < 1e-6, `${where} ${name}: bucket 4 vs exact 3, relative error ${bucketVsExact}`);
        const vsTfjs = relativeError(x, t.dataSync() as Float32Array);
        assert.ok(vsTfjs < 1e-4, `${where} ${name}: bucket 4 vs TF.js, relative error ${vsTfjs}`);
      }
      ref.dispose();
      batch.images.dispose();
    }
    const { batch } = prepareImages([scene], 128);
    const image = batch.images.dataSync() as Float32Array;
    batch.images.dispose();
    const dim = sent.shape[1];
    await assert.rejects(
      bucket.run({ image, sentences: new Float32Array(5 * dim) }),
      new RegExp(`this export takes 1 to 4 sentence embeddings of ${dim} values, got ${5 * dim} values`),
    );
    await assert.rejects(bucket.run({ image }), new RegExp(`sentence embeddings must have ${4 * dim} values`));
    sent.dispose();
    await Promise.all(nets.map((n) => n.release()));
  } finally {
    model.dispose();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
});

test("the fusion's per-head path (large maps: many sentences at large inputs) reads nothing back, so a recorded graph computes its global max", () => {
  const fusion = new VisionLanguageFusion({ ...microConfig().fusion!, vDim: 16, lDim: 24, embedDim: 32 }, new Rng(1));
  const v = tf.randomNormal([1, 40, 16], 0, 1, 'float32', 1) as tf.Tensor3D;
  const l = tf.randomNormal([1, 4, 24], 0, 1, 'float32', 2) as tf.Tensor3D;
  const keep = tf.tensor1d([1, 1, 1, 0]);
  const { result, recording } = recordKernels(
    () => fusion.forward(v, l, { perHead: true, textKeep: keep }),
    new Map<tf.Tensor, string>([
      [v, 'v'],
      [l, 'l'],
      [keep, 'keep'],
    ]),
    fusion.namedParameters(),
  );
  assert.deepEqual(recording.reads, []);
  assert.ok(recording.kernels.some((k) => k.kernel === 'Max'));
  tf.dispose([v, l, keep, result.v, result.l!]);
});
