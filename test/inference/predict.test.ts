import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/engine.js';
import { createModel } from '../../src/inference/create-model.js';
import { loadModel, saveModel } from '../../src/inference/model-files.js';
import type { ApeModel } from '../../src/inference/ape-model.js';
import { decompressRle } from '../../src/structures/rle-string.js';
import { decodeRle } from '../../src/structures/rle.js';
import { writeSafetensorsFile, readSafetensorsFile } from '../../src/io/safetensors-node.js';
import type { RgbImage } from '../../src/io/image-types.js';
import { microConfig } from '../modeling/micro-config.js';

const dir = mkdtempSync(join(tmpdir(), 'ape-model-'));
let model: ApeModel;

before(async () => {
  await initEngine({ backend: 'wasm' });
  model = await createModel(microConfig(), { seed: 11 });
  // Random heads so that scores spread out.
  for (const v of model.trainableVariables())
    v.assign(tf.tidy(() => tf.add(v, tf.randomNormal(v.shape, 0, 0.05, 'float32', 13))));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function image(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + seed * 17 + ((i / 3 / width) | 0) * 7) % 256;
  return { width, height, data };
}

const prompts = { vocabulary: ['cat', 'dog', 'sky'], sentences: ['the red car', 'a person on the left'] };

test('predict: typed instances in original pixels with RLE masks, one grounding per sentence, a semantic label map', async () => {
  const img = image(90, 60, 1);
  const r = await model.predict(img, { ...prompts, threshold: 0, topK: 15 });
  assert.equal(r.width, 90);
  assert.equal(r.height, 60);
  assert.deepEqual(
    r.prompts.map((p) => p.kind),
    ['vocabulary', 'vocabulary', 'vocabulary', 'sentence', 'sentence'],
  );
  assert.equal(r.instances.length, 15);
  for (const [i, inst] of r.instances.entries()) {
    assert.equal(inst.prompt, r.prompts[inst.promptIndex]!.text);
    assert.equal(inst.kind, r.prompts[inst.promptIndex]!.kind);
    if (i > 0) assert.ok(inst.score <= r.instances[i - 1]!.score);
    const [x1, y1, x2, y2] = inst.box;
    assert.ok(x1 >= 0 && y1 >= 0 && x2 <= 90 && y2 <= 60 && x1 <= x2 && y1 <= y2, `box ${inst.box}`);
    assert.deepEqual(inst.mask!.size, [60, 90]);
    // The mask lies inside its box (expanded by the paste's one-pixel margin).
    const bits = decodeRle(decompressRle(inst.mask!));
    for (let x = 0; x < 90; x++) {
      for (let y = 0; y < 60; y++) {
        if (bits[y * 90 + x])
          assert.ok(x >= Math.floor(x1) - 1 && x <= Math.ceil(x2) && y >= Math.floor(y1) - 1 && y <= Math.ceil(y2));
      }
    }
  }
  assert.equal(r.grounding.length, 2);
  assert.deepEqual(
    r.grounding.map((g) => [g.sentence, g.promptIndex]),
    [
      ['the red car', 3],
      ['a person on the left', 4],
    ],
  );
  assert.equal(r.semantic!.labels.length, 90 * 60);
  assert.deepEqual(r.semantic!.prompts, ['cat', 'dog', 'sky', 'the red car', 'a person on the left']);
  assert.ok(r.semantic!.labels.every((l) => l >= -1 && l < 5));
});

test('predict: grounding is the best query of each sentence; scores are the sigmoid of the logits', async () => {
  const img = image(64, 64, 2);
  const r = await model.predict(img, { ...prompts, tasks: ['grounding'] });
  assert.equal(r.instances.length, 0);
  assert.equal(r.semantic, null);
  const batch = {
    images: tf.tensor4d(Float32Array.from(img.data), [1, 64, 64, 3]),
    sizes: [[64, 64]] as [number, number][],
  };
  const out = model.forward(batch, prompts);
  const logits = out.layers[0]!.logits.arraySync()[0]!;
  for (const g of r.grounding) {
    const col = logits.map((row) => row[g.promptIndex]!);
    const best = col.indexOf(Math.max(...col));
    assert.equal(g.query, best);
    assert.ok(Math.abs(g.score - 1 / (1 + Math.exp(-col[best]!))) < 1e-5);
  }
  out.dispose();
  batch.images.dispose();
});

test('predict: a batch gives the same results as one image at a time; a prompt string follows the comma rule', async () => {
  const a = image(70, 50, 3);
  const b = image(40, 64, 4);
  const both = await model.predict([a, b], { vocabulary: ['cat', 'dog'], topK: 10 });
  const one = await model.predict(b, { vocabulary: ['cat', 'dog'], topK: 10 });
  assert.equal(both.length, 2);
  assert.deepEqual(
    both[1]!.instances.map((i) => [i.query, i.promptIndex]),
    one.instances.map((i) => [i.query, i.promptIndex]),
  );
  both[1]!.instances.forEach((inst, i) => assert.ok(Math.abs(inst.score - one.instances[i]!.score) < 1e-4));
  const viaString = await model.predict(b, { prompt: 'cat, dog', topK: 10 });
  assert.deepEqual(
    viaString.prompts.map((p) => p.kind),
    ['vocabulary', 'vocabulary'],
  );
  assert.deepEqual(
    viaString.instances.map((i) => i.query),
    one.instances.map((i) => i.query),
  );
  const sentences = await model.predict(b, { prompt: 'a cat, dog', tasks: ['grounding'] });
  assert.deepEqual(
    sentences.grounding.map((g) => g.sentence),
    ['a cat', 'dog'],
  );
  await assert.rejects(model.predict(b, {}), /no prompts/);
  await assert.rejects(
    model.predict(b, { vocabulary: ['a'], tasks: ['panoptic' as 'semantic'] }),
    /unknown task 'panoptic'/,
  );
});

test('predict: a high threshold keeps only confident instances; masks can be turned off; no tensors leak', async () => {
  const img = image(64, 48, 5);
  const all = await model.predict(img, { vocabulary: ['cat', 'dog'], topK: 20, masks: false });
  assert.ok(all.instances.every((i) => i.mask === null));
  const cut = all.instances[4]!.score;
  const some = await model.predict(img, { vocabulary: ['cat', 'dog'], topK: 20, threshold: cut, masks: false });
  assert.ok(some.instances.every((i) => i.score > cut));
  assert.deepEqual(
    some.instances.map((i) => i.query),
    all.instances.filter((i) => i.score > cut).map((i) => i.query),
  );
  const before = tf.memory().numTensors;
  await model.predict(img, { ...prompts });
  await model.predict([img, img], { ...prompts, fusion: 'word' });
  assert.equal(tf.memory().numTensors, before);
});

test('predict: semantic temperature and background override the config; a huge background wins everywhere, a huge temperature ties every prompt', async () => {
  const img = image(40, 30, 9);
  const vocabulary = ['cat', 'dog', 'sky'];
  const inf = model.config.inference;
  const byConfig = await model.predict(img, { vocabulary, tasks: ['semantic'] });
  const explicit = await model.predict(img, {
    vocabulary,
    tasks: ['semantic'],
    semanticTemperature: inf.semanticTemperature,
    semanticBackground: inf.semanticBackground,
  });
  assert.deepEqual(Array.from(explicit.semantic!.labels), Array.from(byConfig.semantic!.labels));
  // Accumulated maps are sums of at most Q mask probabilities, far below 1e6.
  const background = await model.predict(img, { vocabulary, tasks: ['semantic'], semanticBackground: 1e6 });
  assert.ok(background.semantic!.labels.every((l) => l === -1));
  // sigmoid / 1e9 rounds every softmax weight to exactly 1/3: equal maps, and ties go to prompt 0.
  const flat = await model.predict(img, {
    vocabulary,
    tasks: ['semantic'],
    semanticTemperature: 1e9,
    semanticBackground: 0,
  });
  assert.ok(flat.semantic!.labels.every((l) => l === 0));
  await assert.rejects(
    model.predict(img, { vocabulary, semanticTemperature: 0 }),
    /semanticTemperature must be > 0, got 0/,
  );
});

test('predict: a prompt list is made once: its entries and texts are shared (frozen) by the predictions of the same list; another list, or the same names split otherwise, gets its own', async () => {
  const img = image(40, 40, 5);
  const a = await model.predict(img, { ...prompts, threshold: 0 });
  const b = await model.predict(img, {
    vocabulary: [...prompts.vocabulary],
    sentences: [...prompts.sentences],
    threshold: 0,
  });
  assert.equal(b.prompts, a.prompts);
  assert.equal(b.semantic!.prompts, a.semantic!.prompts);
  assert.deepEqual(a.semantic!.prompts, ['cat', 'dog', 'sky', 'the red car', 'a person on the left']);
  assert.ok(Object.isFrozen(a.prompts) && Object.isFrozen(a.prompts[0]) && Object.isFrozen(a.semantic!.prompts));
  assert.throws(() => {
    (a.prompts[0] as { text: string }).text = 'changed';
  }, TypeError);
  // The same texts with another split between names and sentences: other entries.
  const c = await model.predict(img, {
    vocabulary: [...prompts.vocabulary, prompts.sentences[0]!],
    sentences: [prompts.sentences[1]!],
    threshold: 0,
  });
  assert.notEqual(c.prompts, a.prompts);
  assert.deepEqual(
    c.prompts.map((e) => e.kind),
    ['vocabulary', 'vocabulary', 'vocabulary', 'vocabulary', 'sentence'],
  );
  assert.deepEqual(
    c.grounding.map((g) => g.promptIndex),
    [4],
  );
  // A new list is still checked.
  await assert.rejects(model.predict(img, { vocabulary: ['cat', ' '] }), /prompts\.vocabulary\[1\] is empty/);
});

test('predictVariants: one network pass decoded per variant equals a predict call per variant', async () => {
  const img = image(56, 40, 11);
  const options = { vocabulary: ['cat', 'dog', 'sky'], topK: 12 };
  const variants = [{}, { nmsThreshold: 0.3, threshold: 0.2 }, { semanticTemperature: 0.5, semanticBackground: 1e6 }];
  const before = tf.memory().numTensors;
  const together = model.predictVariants([img, img], options, variants);
  assert.equal(tf.memory().numTensors, before);
  assert.equal(together.length, 3);
  for (const [v, variant] of variants.entries()) {
    const alone = await model.predict(img, { ...options, ...variant });
    for (const got of together[v]!) {
      assert.deepEqual(got.instances, alone.instances);
      assert.deepEqual(Array.from(got.semantic!.labels), Array.from(alone.semantic!.labels));
    }
  }
  // The variants differ where they should: the huge background wins every pixel.
  assert.ok(together[2]![0]!.semantic!.labels.every((l) => l === -1));
  assert.ok(!together[0]![0]!.semantic!.labels.every((l) => l === -1));
  assert.throws(() => model.predictVariants([img], options, []), /no variants/);
});

test('save and load: the same predictions; a wrong or missing tensor is named', async () => {
  const img = image(64, 64, 6);
  const folder = join(dir, 'm');
  await saveModel(model, folder);
  const loaded = await loadModel(folder, { engine: 'tfjs' });
  const x = await model.predict(img, { ...prompts, topK: 8 });
  const y = await loaded.predict(img, { ...prompts, topK: 8 });
  assert.deepEqual(y.instances, x.instances);
  assert.deepEqual(Array.from(y.semantic!.labels), Array.from(x.semantic!.labels));

  const weights = await readSafetensorsFile(join(folder, 'model.safetensors'));
  const bad = join(dir, 'bad');
  await saveModel(model, bad);
  const entries = new Map(
    [...weights.tensors].map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data as Float32Array }]),
  );
  const key = 'transformer.decoder.layers.1.attentions.1.value_proj.weight';
  const orig = entries.get(key)!;
  entries.set(key, {
    dtype: 'F32',
    shape: [orig.shape[1]!, orig.shape[0]! + 1],
    data: new Float32Array(orig.shape[1]! * (orig.shape[0]! + 1)),
  });
  await writeSafetensorsFile(join(bad, 'model.safetensors'), entries);
  await assert.rejects(loadModel(bad), /value_proj\.weight' has shape \[32, 33\], the model needs \[32, 32\]/);
  entries.delete(key);
  await writeSafetensorsFile(join(bad, 'model.safetensors'), entries);
  await assert.rejects(
    loadModel(bad),
    /parameter 'transformer\.decoder\.layers\.1\.attentions\.1\.value_proj\.weight' \[32, 32\] is missing/,
  );
  entries.set(key, orig);
  entries.set('surprise.weight', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
  await writeSafetensorsFile(join(bad, 'model.safetensors'), entries);
  await assert.rejects(loadModel(bad), /tensor 'surprise\.weight' is not a parameter/);

  const config = JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8'));
  delete config.config.transformer.ffnDim;
  writeFileSync(join(bad, 'config.json'), JSON.stringify(config));
  await assert.rejects(loadModel(bad), /config\.transformer\.ffnDim is missing/);
  config.config.transformer.ffnDim = 'wide';
  writeFileSync(join(bad, 'config.json'), JSON.stringify(config));
  await assert.rejects(loadModel(bad), /config\.transformer\.ffnDim must be a number, got "wide"/);
  await assert.rejects(loadModel(join(dir, 'nowhere')), /cannot read .*config\.json/);
});
