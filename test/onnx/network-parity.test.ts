import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/engine.js';
import { loadModel } from '../../src/inference/model-files.js';
import { prepareImages } from '../../src/inference/preprocess.js';
import { readImage } from '../../src/io/image-node.js';
import { exportNetwork, MANIFEST_FILE, recordNetwork } from '../../src/onnx/export-network.js';
import { recordingDifferences } from '../../src/onnx/kernel-recorder.js';
import { writeNetworkExport } from '../../src/onnx/export-files.js';
import { OrtNetwork } from '../../src/onnx/ort-network.js';
import { ape, repoRoot } from '../cli/ape-cli.js';

import { relativeError } from './relative-error.js';

await initEngine();

test('the exported tiny model on ONNX Runtime gives the TF.js forward (last-layer logits, boxes, masks, query picks) within 1e-4 relative', async () => {
  const model = await loadModel(join(repoRoot, 'models/default'));
  const dir = await mkdtemp(join(tmpdir(), 'ape-onnx-'));
  try {
    const size = 128;
    const vocabulary = ['circle', 'star', 'grass'];
    const sentences = ['the red star'];
    // Recorded on a random image; checked on a real one, so nothing data-dependent was baked in.
    await writeNetworkExport(
      dir,
      exportNetwork(model, { size, vocabulary: vocabulary.length, sentences: sentences.length }, 'test'),
    );
    const net = await OrtNetwork.load(dir);
    const { batch } = prepareImages([await readImage(join(repoRoot, 'examples/scene-2.png'))], size);
    const vocab = model.encodePrompts(vocabulary);
    const sent = model.encodePrompts(sentences);
    const got = await net.run({
      image: batch.images.dataSync() as Float32Array,
      vocabulary: vocab.dataSync() as Float32Array,
      sentences: sent.dataSync() as Float32Array,
    });
    const ref = model.forward(batch, { vocabulary, sentences }, { layers: 'last', masks: 'last', hidden: true });
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
      assert.ok(err < 1e-4, `${name}: relative error ${err}`);
    }
    ref.dispose();

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
    // The backbone segment takes the image only and passes features on.
    assert.deepEqual(
      cut.manifest.segments[0]!.inputs.map((i) => i.name),
      ['image'],
    );
    await writeNetworkExport(cutDir, cut);
    const cutNet = await OrtNetwork.load(cutDir);
    const again = await cutNet.run({
      image: batch.images.dataSync() as Float32Array,
      vocabulary: vocab.dataSync() as Float32Array,
      sentences: sent.dataSync() as Float32Array,
    });
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
    await net.release();

    await writeFile(join(dir, MANIFEST_FILE), '{"format": "something else"}');
    await assert.rejects(OrtNetwork.load(dir), /not an APE ONNX export/);
    await writeFile(join(dir, MANIFEST_FILE), '{"format": ');
    await assert.rejects(OrtNetwork.load(dir), /onnx-export\.json/);
  } finally {
    model.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});

test('the recorded forward does not depend on the data: two recordings on other random images and prompts agree kernel for kernel and constant for constant', async () => {
  const model = await loadModel(join(repoRoot, 'models/default'));
  try {
    const shape = { size: 128, vocabulary: 2, sentences: 1, valid: [128, 96] as [number, number] };
    const a = recordNetwork(model, shape, 1);
    const b = recordNetwork(model, shape, 11);
    assert.ok(a.recording.kernels.length > 1000);
    assert.deepEqual(recordingDifferences(a.recording, b.recording), []);
  } finally {
    model.dispose();
  }
});

test('ape export writes a loadable export; bad options are named', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ape-onnx-cli-'));
  try {
    const r = ape(['export', '--size', '128', '--vocab', '2', '--out', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /2 segments/);
    const net = await OrtNetwork.load(dir);
    assert.deepEqual(net.manifest.shape, { size: 128, vocabulary: 2, sentences: 0, valid: [128, 128] });
    assert.equal(net.manifest.model.hash.length, 64);
    await net.release();
    const bad = ape(['export', '--vocab', '0', '--sentences', '0']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--vocab and --sentences cannot both be 0/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
