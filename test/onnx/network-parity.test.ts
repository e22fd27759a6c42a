import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/engine.js';
import { loadModel } from '../../src/inference/model-files.js';
import { createModel } from '../../src/inference/create-model.js';
import type { ApeModel } from '../../src/inference/ape-model.js';
import { trainingModelConfig } from '../../src/training/model-factory.js';
import { prepareImages } from '../../src/inference/preprocess.js';
import { readImage } from '../../src/io/image-node.js';
import type { RgbImage } from '../../src/io/image-types.js';
import { GEOMETRY_INPUTS } from '../../src/modeling/feature-geometry.js';
import { exportNetwork, MANIFEST_FILE, recordNetwork } from '../../src/onnx/export-network.js';
import { recordingDifferences } from '../../src/onnx/kernel-recorder.js';
import { writeNetworkExport } from '../../src/onnx/export-files.js';
import { OrtNetwork } from '../../src/onnx/ort-network.js';
import { ape, repoRoot } from '../cli/ape-cli.js';

import { relativeError } from './relative-error.js';

await initEngine();

/** The top `rows` rows or the left `cols` columns of an image: other aspect ratios of the same scene. */
function crop(image: RgbImage, rows: number, cols: number): RgbImage {
  const data = new Uint8Array(rows * cols * 3);
  for (let y = 0; y < rows; y++)
    data.set(image.data.subarray(y * image.width * 3, (y * image.width + cols) * 3), y * cols * 3);
  return { width: cols, height: rows, data } as RgbImage;
}

/**
 * Runs `net` (an export of `model` at `size`) and the TF.js forward on each image and asserts
 * the same query picks and the last layer's logits, hidden queries, boxes and masks within 1e-4
 * relative; returns each image's valid region.
 */
async function assertParity(
  net: OrtNetwork,
  model: ApeModel,
  images: RgbImage[],
  size: number,
  prompts: { vocabulary: string[]; sentences: string[] },
): Promise<[number, number][]> {
  const vocab = model.encodePrompts(prompts.vocabulary);
  const sent = model.encodePrompts(prompts.sentences);
  const valid: [number, number][] = [];
  for (const image of images) {
    const { batch } = prepareImages([image], size);
    valid.push(batch.sizes[0]!);
    const got = await net.run({
      image: batch.images.dataSync() as Float32Array,
      valid: batch.sizes[0]!,
      vocabulary: vocab.dataSync() as Float32Array,
      sentences: sent.dataSync() as Float32Array,
    });
    const ref = model.forward(batch, prompts, { layers: 'last', masks: 'last', hidden: true });
    const last = ref.layers[0]!;
    assert.deepEqual(Array.from(got.selected), Array.from(ref.encoder.selected[0]!));
    assert.deepEqual(got.logits!.dims, last.logits.shape);
    assert.deepEqual(got.hidden.dims, last.hidden!.shape);
    assert.deepEqual(got.masks.dims, last.masks!.shape);
    for (const [name, a, b] of [
      ['logits', got.logits!.data, last.logits],
      ['hidden queries', got.hidden.data, last.hidden!],
      ['boxes', got.boxes.data, last.boxes],
      ['masks', got.masks.data, last.masks!],
    ] as const) {
      const err = relativeError(a, b.dataSync() as Float32Array);
      assert.ok(err < 1e-4, `${batch.sizes[0]!.join('x')} ${name}: relative error ${err}`);
    }
    ref.dispose();
    batch.images.dispose();
  }
  tf.dispose([vocab, sent]);
  return valid;
}

test('one export of the tiny model on ONNX Runtime gives the TF.js forward (last-layer logits, boxes, masks, query picks) within 1e-4 relative for images of three aspect ratios', async () => {
  const model = await loadModel(join(repoRoot, 'models/default'));
  const dir = await mkdtemp(join(tmpdir(), 'ape-onnx-'));
  try {
    const size = 128;
    const vocabulary = ['circle', 'star', 'grass'];
    const sentences = ['the red star'];
    // Recorded on a random image filling the input; checked on real ones, with and without padding.
    await writeNetworkExport(
      dir,
      exportNetwork(model, { size, vocabulary: vocabulary.length, sentences: sentences.length }, 'test'),
    );
    const net = await OrtNetwork.load(dir);
    assert.deepEqual(net.manifest.inputs.geometry, Object.values(GEOMETRY_INPUTS));
    const vocab = model.encodePrompts(vocabulary);
    const sent = model.encodePrompts(sentences);
    const scene = await readImage(join(repoRoot, 'examples/scene-2.png'));
    const valid = await assertParity(net, model, [scene, crop(scene, 200, 256), crop(scene, 256, 150)], size, {
      vocabulary,
      sentences,
    });
    assert.deepEqual(valid, [
      [128, 128],
      [100, 128],
      [128, 75],
    ]);
    // Cut after the backbone: three segments, the second without a host step before it; the
    // same picks and outputs as the uncut graph, and a time for each stage.
    const cutDir = join(dir, 'cut');
    const cut = exportNetwork(model, { size, vocabulary: vocabulary.length, sentences: sentences.length }, 'test', {
      cutAfter: ['backbone'],
    });
    assert.deepEqual(
      cut.manifest.segments.map((s) => s.after ?? null),
      [null, 'backbone', null],
    );
    assert.equal(cut.manifest.hostSteps.length, 1);
    // The backbone segment takes the image and its padding mask only and passes features on.
    assert.deepEqual(
      cut.manifest.segments[0]!.inputs.map((i) => i.name),
      ['image', 'pixel_keep'],
    );
    await writeNetworkExport(cutDir, cut);
    const { batch } = prepareImages([scene], size);
    const feeds = {
      image: batch.images.dataSync() as Float32Array,
      valid: batch.sizes[0]!,
      vocabulary: vocab.dataSync() as Float32Array,
      sentences: sent.dataSync() as Float32Array,
    };
    const got = await net.run(feeds);
    const cutNet = await OrtNetwork.load(cutDir);
    const again = await cutNet.run(feeds);
    assert.equal(again.timings.segments.length, 3);
    assert.deepEqual(Array.from(again.selected), Array.from(got.selected));
    for (const name of ['logits', 'hidden', 'boxes', 'masks'] as const) {
      const err = relativeError(again[name]!.data, got[name]!.data);
      assert.ok(err < 1e-6, `cut export, ${name}: relative error ${err} to the uncut one`);
    }
    await cutNet.release();
    tf.dispose([batch.images, vocab, sent]);
    await assert.rejects(
      net.run({ image: new Float32Array(10) }),
      /image must have 49152 values \(shape \[1, 128, 128, 3\]\), got 10/,
    );
    await assert.rejects(
      net.run({ image: new Float32Array(49152), valid: [129, 100] }),
      /valid region 129x100 does not fit the 128x128 input/,
    );
    await net.release();

    await writeFile(join(dir, MANIFEST_FILE), '{"format": "something else"}');
    await assert.rejects(OrtNetwork.load(dir), /not an APE ONNX export/);
    await writeFile(join(dir, MANIFEST_FILE), '{"format": "ape-onnx", "version": 1}');
    await assert.rejects(OrtNetwork.load(dir), /made by an older exporter \(one export per valid region\)/);
    await writeFile(join(dir, MANIFEST_FILE), '{"format": ');
    await assert.rejects(OrtNetwork.load(dir), /onnx-export\.json/);
  } finally {
    model.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});

test('the recipe switches of issue 22 export too: a conv stem with refinement blocks and the stride-4 mask feature (its bilinear upsampling) give the TF.js forward on ONNX Runtime', async () => {
  const size = 128;
  const config = trainingModelConfig(
    'tiny',
    {
      backbone: { stem: { channels: [16, 32, 64, 64], extraConvs: 1 }, pyramid: { maskOnlyScales: [4] } },
      maskHead: { feature: 'p2' },
    },
    size,
    256,
  );
  const model = await createModel(config, { seed: 3 });
  const dir = await mkdtemp(join(tmpdir(), 'ape-onnx-stem-'));
  try {
    const prompts = { vocabulary: ['circle', 'star', 'grass'], sentences: ['the red star'] };
    await writeNetworkExport(dir, exportNetwork(model, { size, vocabulary: 3, sentences: 1 }, 'test'));
    const net = await OrtNetwork.load(dir);
    const scene = await readImage(join(repoRoot, 'examples/scene-2.png'));
    const valid = await assertParity(net, model, [scene, crop(scene, 256, 150)], size, prompts);
    assert.deepEqual(valid, [
      [128, 128],
      [128, 75],
    ]);
    await net.release();
  } finally {
    model.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});

test('the recorded forward depends on neither the data nor the padding: recordings on other random images and prompts, with and without padded pixels and sentences, agree kernel for kernel and constant for constant', async () => {
  const model = await loadModel(join(repoRoot, 'models/default'));
  try {
    const shape = { size: 128, vocabulary: 2, sentences: 2 };
    const a = recordNetwork(model, shape, 1, { valid: [128, 96] });
    const b = recordNetwork(model, shape, 11);
    const c = recordNetwork(model, shape, 5, { valid: [40, 128], paddedSentences: 1 });
    assert.ok(a.recording.kernels.length > 1000);
    assert.deepEqual(recordingDifferences(a.recording, b.recording), []);
    assert.deepEqual(recordingDifferences(a.recording, c.recording), []);
    // What differs is data: the geometry and the sentence mask are graph inputs.
    assert.deepEqual([...a.recording.dataInputs].sort(), [...Object.values(GEOMETRY_INPUTS), 'sentence_keep'].sort());
    const keep = (r: typeof a) => Array.from(r.recording.values.get('sentence_keep')!.data!);
    assert.deepEqual(
      [keep(a), keep(c)],
      [
        [1, 1],
        [1, 0],
      ],
    );
  } finally {
    model.dispose();
  }
});

test('ape export writes a loadable export, showing its progress (plain lines off a terminal); bad options are named', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ape-onnx-cli-'));
  try {
    const r = ape(['export', '--size', '128', '--vocab', '2', '--out', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /2 segments, 23\.\d MB/);
    // The modules the recording reached (an inference forward leaves some unused: the earlier
    // decoder layers' classifiers), then the MB written, to the last.
    const reached = /ape export: recording: (\d+)\/(\d+) [\d.]+ module\/s/.exec(
      r.stderr
        .split('\n')
        .filter((l) => l.includes('recording:'))
        .pop() ?? '',
    );
    assert.ok(reached && Number(reached[1]) > 100 && Number(reached[1]) <= Number(reached[2]), r.stderr);
    assert.match(r.stderr, /ape export: writing: 23\/23 [\d.]+ MB\/s/);
    const net = await OrtNetwork.load(dir);
    assert.deepEqual(net.manifest.shape, { size: 128, vocabulary: 2, sentences: 0 });
    assert.equal(net.manifest.model.hash.length, 64);
    await net.release();
    const bad = ape(['export', '--vocab', '0', '--sentences', '0']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--vocab and --sentences cannot both be 0/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
