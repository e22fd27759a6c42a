import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, truncate, writeFile, readFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/engine.js';
import { loadModel } from '../../src/inference/model-files.js';
import { prepareImages } from '../../src/inference/preprocess.js';
import { readImage } from '../../src/io/image-node.js';
import { exportNetwork } from '../../src/onnx/export-network.js';
import { writeNetworkExport } from '../../src/onnx/export-files.js';
import { OrtNetwork } from '../../src/onnx/ort-network.js';
import { repoRoot } from '../cli/ape-cli.js';
import { releasedShapesNetwork } from './released-shapes.js';

import { relativeError } from './relative-error.js';

await initEngine();

test('ape-ti shapes (ViT-Ti, 5 levels, fusion, 900 queries; random weights) at 128: ONNX Runtime gives the TF.js forward within 1e-4 relative on the same query picks', async () => {
  const net = releasedShapesNetwork('ape-ti');
  const dir = await mkdtemp(join(tmpdir(), 'ape-onnx-ti-'));
  try {
    const size = 128;
    await writeNetworkExport(dir, exportNetwork(net, { size, vocabulary: 8, sentences: 2 }, 'test'));
    const ort = await OrtNetwork.load(dir);
    const image = tf.randomUniform([1, size, size, 3], 0, 255, 'float32', 4) as tf.Tensor4D;
    const vocab = tf.randomNormal([8, 1024], 0, 1, 'float32', 5) as tf.Tensor2D;
    const sentences = tf.randomNormal([2, 1024], 0, 1, 'float32', 6) as tf.Tensor2D;
    const texts = { vocabulary: Array.from({ length: 8 }, (_, i) => `v${i}`), sentences: ['s0', 's1'] };
    const own = net as unknown as { encodePrompts?: (t: readonly string[]) => tf.Tensor2D };
    own.encodePrompts = (t) => tf.clone(t[0] === 'v0' ? vocab : sentences);
    const ref = net.forward({ images: image, sizes: [[size, size]] }, texts, { layers: 'last', masks: 'last' });
    delete own.encodePrompts;
    // Random weights leave the objectness logits within ~1e-3 of each other, so float-level
    // differences could reorder near-ties: the decoder is compared on TF.js's picks.
    const picks = ref.encoder.selected[0]!;
    const got = await ort.run(
      {
        image: image.dataSync() as Float32Array,
        vocabulary: vocab.dataSync() as Float32Array,
        sentences: sentences.dataSync() as Float32Array,
      },
      picks,
    );
    const last = ref.layers[0]!;
    assert.deepEqual(got.logits!.dims, [1, 900, 10]);
    for (const [name, a, b] of [
      ['logits', got.logits!.data, last.logits],
      ['boxes', got.boxes.data, last.boxes],
      ['masks', got.masks.data, last.masks!],
    ] as const) {
      const err = relativeError(a, b.dataSync() as Float32Array);
      assert.ok(err < 1e-4, `${name}: relative error ${err}`);
    }
    ref.dispose();
    tf.dispose([image, vocab, sentences]);
    await ort.release();
  } finally {
    net.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});

test('external data: an export with its weights in a .data file gives the same outputs; a missing, truncated or altered data file is refused with its name', async () => {
  const model = await loadModel(join(repoRoot, 'models/default'));
  const inGraph = await mkdtemp(join(tmpdir(), 'ape-onnx-in-'));
  const external = await mkdtemp(join(tmpdir(), 'ape-onnx-ext-'));
  try {
    const shape = { size: 128, vocabulary: 3, sentences: 0 };
    await writeNetworkExport(inGraph, exportNetwork(model, shape, 'test', { externalData: 'never' }));
    const exported = exportNetwork(model, shape, 'test', { externalData: 'always' });
    await writeNetworkExport(external, exported);
    const data = exported.manifest.segments[0]!.data!;
    assert.equal(data.file, 'segment-0.onnx.data');
    // The graph file holds no weights: it is a small fraction of the data file.
    assert.ok(exported.files[0]!.length * 20 < data.bytes, `${exported.files[0]!.length} vs ${data.bytes}`);

    const { batch } = prepareImages([await readImage(join(repoRoot, 'examples/scene-2.png'))], 128);
    const inputs = {
      image: batch.images.dataSync() as Float32Array,
      vocabulary: model.encodePrompts(['circle', 'star', 'grass']).dataSync() as Float32Array,
    };
    const a = await OrtNetwork.load(inGraph);
    const b = await OrtNetwork.load(external);
    const [ra, rb] = [await a.run(inputs), await b.run(inputs)];
    assert.deepEqual(Array.from(rb.logits!.data), Array.from(ra.logits!.data));
    assert.deepEqual(Array.from(rb.masks.data), Array.from(ra.masks.data));
    await Promise.all([a.release(), b.release()]);
    batch.images.dispose();

    const path = join(external, data.file);
    const bytes = await readFile(path);
    bytes[100] = bytes[100]! ^ 0xff;
    await writeFile(path, bytes);
    await assert.rejects(OrtNetwork.load(external), /segment-0\.onnx\.data is not the one the export wrote/);
    await truncate(path, data.bytes - 4096);
    await assert.rejects(
      OrtNetwork.load(external),
      new RegExp(`segment-0\\.onnx\\.data has ${data.bytes - 4096} bytes, the export wrote ${data.bytes}`),
    );
    await unlink(path);
    await assert.rejects(OrtNetwork.load(external), /segment-0\.onnx\.data is missing or unreadable/);
  } finally {
    model.dispose();
    await rm(inGraph, { recursive: true, force: true });
    await rm(external, { recursive: true, force: true });
  }
});

test('the vocabulary bucket does not change a result: 3 names padded to 8 and to 16 give the same logits, boxes and masks', async () => {
  const model = await loadModel(join(repoRoot, 'models/default'));
  const dirs = [await mkdtemp(join(tmpdir(), 'ape-onnx-b8-')), await mkdtemp(join(tmpdir(), 'ape-onnx-b16-'))];
  try {
    const { batch } = prepareImages([await readImage(join(repoRoot, 'examples/scene-2.png'))], 128);
    const names = model.encodePrompts(['circle', 'star', 'grass']);
    const sentence = model.encodePrompts(['the red star']).dataSync() as Float32Array;
    const outs = [];
    for (const [i, bucket] of [8, 16].entries()) {
      await writeNetworkExport(dirs[i]!, exportNetwork(model, { size: 128, vocabulary: bucket, sentences: 1 }, 't'));
      // Padding rows repeat the last name, as OrtEngine pads.
      const padded = tf.concat([names, tf.tile(tf.slice(names, [2, 0], [1, -1]), [bucket - 3, 1])]);
      const net = await OrtNetwork.load(dirs[i]!);
      const out = await net.run({
        image: batch.images.dataSync() as Float32Array,
        vocabulary: padded.dataSync() as Float32Array,
        sentences: sentence,
      });
      padded.dispose();
      await net.release();
      // The real columns: the 3 names and the sentence (the last column).
      const [, q, p] = out.logits!.dims as [number, number, number];
      const cols = Array.from({ length: q }, (_, r) =>
        [0, 1, 2, p - 1].map((c) => out.logits!.data[r * p + c]!),
      ).flat();
      outs.push({ cols, out });
    }
    const [a, b] = outs as [(typeof outs)[0], (typeof outs)[0]];
    assert.deepEqual(Array.from(b.out.selected), Array.from(a.out.selected));
    assert.ok(relativeError(Float32Array.from(b.cols), Float32Array.from(a.cols)) < 1e-6);
    assert.ok(relativeError(b.out.boxes.data, a.out.boxes.data) < 1e-6);
    assert.ok(relativeError(b.out.masks.data, a.out.masks.data) < 1e-6);
    tf.dispose([names, batch.images]);
  } finally {
    model.dispose();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
});
