import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/engine.js';
import { loadModel, saveModel } from '../../src/inference/model-files.js';
import { exportNetworkFromFiles, exportTextTowerFromFiles } from '../../src/inference/export-from-files.js';
import type { ApeModel } from '../../src/inference/ape-model.js';
import { exportNetwork, type ExportOptions, type NetworkExport } from '../../src/onnx/export-network.js';
import { exportTextTower, textExportShape, type TextExport } from '../../src/onnx/text-export.js';
import { chunkBytes, type DataChunk } from '../../src/onnx/onnx-model.js';
import type { ExportProgressEvent } from '../../src/onnx/export-progress.js';
import { ApeNetwork, TEXT_TOWER_PREFIX } from '../../src/modeling/ape-network.js';
import { isPlaceholder, withParameterValues } from '../../src/nn/module.js';
import { repoRoot } from '../cli/ape-cli.js';
import { releasedShapesNetwork } from './released-shapes.js';

await initEngine();

const shipped = join(repoRoot, 'models/default');

/** The bytes of a file given as chunks (deferred ones read). */
function joined(chunks: readonly DataChunk[]): Buffer {
  return Buffer.concat(chunks.map((c) => chunkBytes(c)));
}

/** Asserts two exports are the same files byte for byte (graphs, external data, manifest). */
function assertSameExport(a: NetworkExport | TextExport, b: NetworkExport | TextExport, what: string): void {
  assert.deepEqual(b.manifest, a.manifest, `${what}: manifest`);
  assert.equal(b.files.length, a.files.length, `${what}: graph files`);
  a.files.forEach((f, i) => assert.ok(Buffer.from(f).equals(Buffer.from(b.files[i]!)), `${what}: graph ${i} differs`));
  const data = (e: NetworkExport | TextExport): (DataChunk[] | null)[] =>
    Array.isArray(e.data) && e.data.every((d) => d === null || Array.isArray(d))
      ? (e.data as (DataChunk[] | null)[])
      : [e.data as DataChunk[] | null];
  const [da, db] = [data(a), data(b)];
  assert.equal(db.length, da.length);
  da.forEach((chunks, i) => {
    const other = db[i]!;
    assert.equal(other === null, chunks === null, `${what}: external data ${i}`);
    if (chunks && other) assert.ok(joined(chunks).equals(joined(other)), `${what}: external data ${i} differs`);
  });
}

/** The old way (the loaded whole model, weights from the engine) against the detector alone from the files. */
async function assertNetworkExportsSame(
  model: ApeModel,
  dir: string,
  shape: { size: number; vocabulary: number; sentences: number },
  options: ExportOptions,
): Promise<void> {
  const old = exportNetwork(model, shape, 'hash', options);
  const events: ExportProgressEvent[] = [];
  const fromFiles = await exportNetworkFromFiles({ dir, config: model.config }, shape, 'hash', {
    ...options,
    onProgress: (e) => events.push(e),
  });
  assertSameExport(old, fromFiles, `${model.config.name} at ${shape.size}, external data ${options.externalData}`);
  // Progress: modules reached one by one, never more than there are.
  assert.ok(events.length > 10);
  events.forEach((e, i) => {
    assert.equal(e.phase, 'record');
    assert.equal(e.done, i + 1);
    assert.ok(e.done <= e.total);
  });
}

test('tiny: the network export recorded from the detector alone (weights from the checkpoint) is byte-identical to the one from the whole loaded model, and so is the text export from the tower alone', async () => {
  const model = await loadModel(shipped, { engine: 'tfjs' });
  try {
    for (const externalData of ['never', 'always'] as const)
      await assertNetworkExportsSame(model, shipped, { size: 128, vocabulary: 3, sentences: 2 }, { externalData });
    const shape = textExportShape(model.config.text.encoder.contextLength);
    const old = exportTextTower(
      model.language.net,
      model.config.text.pooling,
      shape,
      { name: 'tiny', hash: 'h' },
      { externalData: true },
    );
    const events: ExportProgressEvent[] = [];
    const fromFiles = await exportTextTowerFromFiles({ dir: shipped, config: model.config }, shape, 'h', (e) =>
      events.push(e),
    );
    assertSameExport(old, fromFiles, 'tiny text tower');
    assert.deepEqual(
      events.map((e) => `${e.done}/${e.total} ${e.unit}`),
      Array.from({ length: 12 }, (_, i) => `${i + 1}/12 graph`),
    );
  } finally {
    model.dispose();
  }
});

test('ape-ti shapes with a stand-in text tower: the detector-only export from the saved checkpoint is byte-identical to the whole model', async () => {
  const model = releasedShapesNetwork('ape-ti', 3);
  const dir = await mkdtemp(join(tmpdir(), 'ape-export-files-'));
  try {
    await saveModel(model, dir);
    await assertNetworkExportsSame(model, dir, { size: 128, vocabulary: 0, sentences: 1 }, { externalData: 'always' });
  } finally {
    model.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});

test("parts 'detector': the text tower is placeholders (no memory), the rest is made; prompts it would have to encode are refused by name", () => {
  const whole = releasedShapesNetwork('ape-ti');
  const before = tf.memory().numBytes;
  const detector = withParameterValues('zeros', () => new ApeNetwork(whole.config, whole.tokenizer, 0, 'detector'));
  try {
    const params = [...detector.namedParameters()];
    const text = params.filter(([name]) => name.startsWith(TEXT_TOWER_PREFIX));
    assert.equal(text.length, [...whole.language.net.namedParameters()].length);
    assert.ok(text.every(([, v]) => isPlaceholder(v) && v.size === 0));
    const rest = params.filter(([name]) => !name.startsWith(TEXT_TOWER_PREFIX));
    assert.ok(rest.every(([name, v]) => !isPlaceholder(v) && v.size === whole.namedParameters().get(name)!.size));
    const detectorBytes = rest.reduce((a, [, v]) => a + v.size * 4, 0);
    assert.equal(tf.memory().numBytes - before, detectorBytes);
    assert.ok(detector.textTowerReleased);
    assert.throws(() => detector.encodePrompts(['a cat']), /detector alone \(parts 'detector'\)/);
  } finally {
    detector.dispose();
    whole.dispose();
  }
});
