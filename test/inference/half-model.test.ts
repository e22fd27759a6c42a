import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/engine.js';
import { createModel } from '../../src/inference/create-model.js';
import { loadModel, saveModel } from '../../src/inference/model-files.js';
import { writeHalfModel } from '../../src/inference/half-model.js';
import { modelFromBytes } from '../../src/browser/load-model-browser.js';
import { floatToHalf, halfToFloat } from '../../src/io/safetensors.js';
import { readSafetensorsFile, readSafetensorsHeaderFile, writeSafetensorsFile } from '../../src/io/safetensors-node.js';
import type { ApeModel } from '../../src/inference/ape-model.js';
import { microConfig } from '../modeling/micro-config.js';
import { ape } from '../cli/ape-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'ape-half-model-'));
const full = join(dir, 'full');
let model: ApeModel;

before(async () => {
  await initEngine({ backend: 'wasm' });
  model = await createModel(microConfig(), { seed: 5 });
  await saveModel(model, full);
  mkdirSync(join(full, 'onnx'));
  writeFileSync(join(full, 'onnx', 'stale.onnx'), 'an export of the float32 weights');
});
after(() => {
  model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('ape checkpoint half: every weight rounded to half precision, read back as such by the Node and browser loaders', async () => {
  const out = join(dir, 'half');
  const cli = ape(['checkpoint', 'half', '--from', full, '--out', out]);
  assert.equal(cli.code, 0, cli.stderr);
  const count = model.namedParameters().size;
  assert.match(
    cli.stdout,
    new RegExp(
      `^wrote .*half: ${count} tensors in half precision, [\\d.]+ MB from [\\d.]+ MB; largest rounding error [\\d.]+e-\\d+ of the tensor's largest magnitude \\('[^']+'\\), \\d+ nonzero weights became 0\\n$`,
    ),
  );
  const header = await readSafetensorsHeaderFile(join(out, 'model.safetensors'));
  assert.deepEqual(new Set(header.tensors.map((t) => t.dtype)), new Set(['F16']));
  let dataBytes = 0;
  for (const t of header.tensors) dataBytes += t.end - t.begin;
  let params = 0;
  for (const v of model.namedParameters().values()) params += v.size;
  assert.equal(dataBytes, 2 * params);
  assert.deepEqual(readFileSync(join(out, 'config.json')), readFileSync(join(full, 'config.json')));
  assert.deepEqual(readFileSync(join(out, 'tokenizer.json')), readFileSync(join(full, 'tokenizer.json')));
  assert.equal(existsSync(join(out, 'onnx')), false, 'the float32 export cache is not copied');

  const viaNode = await loadModel(out);
  const viaBytes = await modelFromBytes({
    config: readFileSync(join(out, 'config.json'), 'utf8'),
    weights: new Uint8Array(readFileSync(join(out, 'model.safetensors'))),
    tokenizer: new Uint8Array(readFileSync(join(out, 'tokenizer.json'))),
  });
  let worst = 0;
  for (const [name, v] of model.namedParameters()) {
    const original = v.dataSync() as Float32Array;
    const rounded = Float32Array.from(original, (x) => halfToFloat(floatToHalf(x)));
    assert.deepEqual(viaNode.namedParameters().get(name)!.dataSync(), rounded, name);
    assert.deepEqual(viaBytes.namedParameters().get(name)!.dataSync(), rounded, name);
    let largest = 0;
    for (let i = 0; i < original.length; i++) {
      largest = Math.max(largest, Math.abs(original[i]!));
      // Round to nearest: half of a unit in the last place (2^-11 of the value) for normal numbers.
      assert.ok(Math.abs(rounded[i]! - original[i]!) <= Math.max(2 ** -11 * Math.abs(original[i]!), 2 ** -25), name);
    }
    if (largest > 0)
      for (let i = 0; i < original.length; i++) worst = Math.max(worst, Math.abs(rounded[i]! - original[i]!) / largest);
  }
  const reported = Number(/largest rounding error ([\d.e-]+)/.exec(cli.stdout)![1]);
  assert.ok(Math.abs(reported - worst) <= 0.01 * worst, `reported ${reported}, computed ${worst}`);
  viaNode.dispose();
  viaBytes.dispose();
});

test('ape checkpoint half: refuses an existing model, a weight beyond half range, a folder without weights', async () => {
  const out = join(dir, 'twice');
  assert.equal(ape(['checkpoint', 'half', '--from', full, '--out', out]).code, 0);
  const again = ape(['checkpoint', 'half', '--from', full, '--out', out]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /twice[\\/]model\.safetensors exists; remove it or choose another output folder/);

  const big = join(dir, 'big');
  await saveModel(model, big);
  const weights = await readSafetensorsFile(join(big, 'model.safetensors'));
  const [name, entry] = [...weights.tensors][3]!;
  const data = Float32Array.from(entry.data as Float32Array);
  data[2] = 70000;
  weights.tensors.set(name, { ...entry, data });
  await writeSafetensorsFile(join(big, 'model.safetensors'), weights.tensors, weights.metadata);
  await assert.rejects(
    writeHalfModel(big, join(dir, 'big-half')),
    new RegExp(`tensor '${name.replaceAll('.', '\\.')}' holds 70000 at index 2, outside half precision's range`),
  );
  assert.equal(existsSync(join(dir, 'big-half')), false, 'nothing written');

  await assert.rejects(
    writeHalfModel(join(dir, 'nowhere'), join(dir, 'x')),
    /nowhere: not a model folder \(no model\.safetensors\)/,
  );
  const usage = ape(['checkpoint', 'halve', '--from', full]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /unknown action 'halve' \(one of: compact, half\)/);
});
