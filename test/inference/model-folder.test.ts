import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/engine.js';
import { createModel } from '../../src/inference/create-model.js';
import { loadModel, saveModel } from '../../src/inference/model-files.js';
import { modelFromBytes } from '../../src/browser/load-model-browser.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../../src/io/safetensors-node.js';
import type { ApeModel } from '../../src/inference/ape-model.js';
import { microConfig } from '../modeling/micro-config.js';

// The Node loader (files) and the browser loader (bytes) share one set of checks: the same
// folder gives the same weights, and the same defect the same message (the browser names the
// file by its folder name, the Node loader by its path).

const dir = mkdtempSync(join(tmpdir(), 'ape-model-folder-'));
let model: ApeModel;

before(async () => {
  await initEngine({ backend: 'wasm' });
  model = await createModel(microConfig(), { seed: 5 });
  await saveModel(model, join(dir, 'good'));
});
after(() => {
  model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const folderBytes = (folder: string) => ({
  config: readFileSync(join(folder, 'config.json'), 'utf8'),
  weights: new Uint8Array(readFileSync(join(folder, 'model.safetensors'))),
  tokenizer: new Uint8Array(readFileSync(join(folder, 'tokenizer.json'))),
});

/** The error message of a rejected promise. */
async function messageOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail('expected a rejection');
}

test('Node and browser loaders give the same parameters from the same folder', async () => {
  const folder = join(dir, 'good');
  const viaNode = await loadModel(folder);
  const viaBytes = await modelFromBytes(folderBytes(folder));
  const a = viaNode.namedParameters();
  const b = viaBytes.namedParameters();
  assert.deepEqual([...b.keys()], [...a.keys()]);
  for (const [name, v] of model.namedParameters()) {
    assert.deepEqual(Array.from(a.get(name)!.dataSync()), Array.from(v.dataSync()), name);
    assert.deepEqual(Array.from(b.get(name)!.dataSync()), Array.from(v.dataSync()), name);
  }
  viaNode.dispose();
  viaBytes.dispose();
});

test('a wrong shape, a missing or extra tensor and a bad config give the same message on both paths', async () => {
  const good = join(dir, 'good');
  const bad = join(dir, 'bad');
  await saveModel(model, bad);
  const weights = await readSafetensorsFile(join(good, 'model.safetensors'));
  const entries = new Map(
    [...weights.tensors].map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data as Float32Array }]),
  );
  const weightsPath = join(bad, 'model.safetensors');
  const before = tf.memory().numTensors;
  const both = async (): Promise<string> => {
    const node = await messageOf(loadModel(bad));
    const browser = await messageOf(modelFromBytes(folderBytes(bad)));
    // Same text once the Node path's file path is named as the browser names the file.
    assert.equal(
      browser,
      node.replaceAll(weightsPath, 'model.safetensors').replaceAll(join(bad, 'config.json'), 'config.json'),
    );
    return browser;
  };

  const key = 'transformer.encoder.layers.0.ffns.0.layers.1.weight';
  const orig = entries.get(key)!;
  assert.deepEqual(orig.shape, [64, 32]);
  entries.set(key, { dtype: 'F32', shape: [64, 33], data: new Float32Array(64 * 33) });
  await writeSafetensorsFile(weightsPath, entries);
  assert.equal(await both(), `model.safetensors: parameter '${key}' has shape [64, 33], the model needs [64, 32]`);

  entries.delete(key);
  await writeSafetensorsFile(weightsPath, entries);
  assert.equal(await both(), `model.safetensors: parameter '${key}' [64, 32] is missing`);

  entries.set(key, orig);
  entries.set('surprise.weight', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
  await writeSafetensorsFile(weightsPath, entries);
  assert.equal(await both(), `model.safetensors: tensor 'surprise.weight' is not a parameter of the 'micro' model`);

  entries.delete('surprise.weight');
  await writeSafetensorsFile(weightsPath, entries);
  const config = JSON.parse(readFileSync(join(good, 'config.json'), 'utf8'));
  config.config.transformer.ffnDim = 'wide';
  writeFileSync(join(bad, 'config.json'), JSON.stringify(config));
  assert.equal(await both(), 'config.json: config.transformer.ffnDim must be a number, got "wide"');
  delete config.config.transformer.ffnDim;
  writeFileSync(join(bad, 'config.json'), JSON.stringify(config));
  assert.equal(await both(), 'config.json: config.transformer.ffnDim is missing');
  writeFileSync(join(bad, 'config.json'), JSON.stringify({ ...config, format: 'other' }));
  assert.equal(await both(), `config.json: 'format' must be "ape-model"`);
  // A model whose weights were refused is disposed, not leaked.
  assert.equal(tf.memory().numTensors, before);
});
