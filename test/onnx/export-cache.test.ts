import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/engine.js';
import { loadModel } from '../../src/inference/model-files.js';
import type { Prediction } from '../../src/inference/results.js';
import { readImage } from '../../src/io/image-node.js';
import { exportCacheDirs, inspectCachedExport } from '../../src/onnx/export-cache.js';
import { filesHash } from '../../src/onnx/export-files.js';
import { MANIFEST_FILE } from '../../src/onnx/export-network.js';
import { TEXT_MANIFEST_FILE } from '../../src/onnx/text-export.js';
import { OPSET } from '../../src/onnx/kernel-ops.js';
import { OrtEngine } from '../../src/onnx/ort-engine.js';
import { repoRoot } from '../cli/ape-cli.js';

await initEngine();

const shipped = join(repoRoot, 'models/default');
const shape = { size: 128, vocabulary: 8, sentences: 1 };
const key = '128-v0-s1';
const prompts = { vocabulary: ['circle', 'star', 'sky'], sentences: ['the red star'], threshold: 0.2 };

function assertSameInstances(a: Prediction, b: Prediction): void {
  assert.ok(b.instances.length > 0, 'no instances to compare');
  assert.deepEqual(
    a.instances.map((i) => [i.prompt, i.query]),
    b.instances.map((i) => [i.prompt, i.query]),
  );
  a.instances.forEach((inst, k) =>
    assert.ok(Math.abs(inst.score - b.instances[k]!.score) < 1e-4, `score ${inst.score} vs ${b.instances[k]!.score}`),
  );
}

test('inspectCachedExport: a manifest fits only when made from these weights, by this opset and format version, for this shape; each mismatch is named', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ape-onnx-manifest-'));
  try {
    const good = { format: 'ape-onnx', version: 2, opset: OPSET, model: { name: 'tiny', hash: 'abc' }, shape };
    const inspect = async (manifest: unknown) => {
      await writeFile(join(dir, MANIFEST_FILE), typeof manifest === 'string' ? manifest : JSON.stringify(manifest));
      return inspectCachedExport(dir, 'abc', shape);
    };
    assert.deepEqual(await inspectCachedExport(join(dir, 'nothing'), 'abc', shape), { state: 'missing' });
    assert.deepEqual(await inspect(good), { state: 'fits' });
    // An export of the older format (one per valid region, the geometry baked in) is made again.
    assert.deepEqual(await inspect({ ...good, version: 1, shape: { ...shape, valid: [128, 96] } }), {
      state: 'stale',
      why: 'has format version 1; this exporter writes version 2',
    });
    assert.deepEqual(await inspect({ ...good, model: { name: 'tiny', hash: 'def' } }), {
      state: 'stale',
      why: 'was made from other weights (model hash def, these are abc)',
    });
    assert.deepEqual(await inspect({ ...good, opset: 16 }), {
      state: 'stale',
      why: `has opset 16; this exporter writes opset ${OPSET}`,
    });
    assert.deepEqual(await inspect({ ...good, shape: { ...shape, sentences: 2 } }), {
      state: 'stale',
      why: 'was made for 128-v8-s2, not 128-v8-s1',
    });
    const damaged = await inspect('{"format": ');
    assert.equal(damaged.state, 'stale');
    assert.match(damaged.state === 'stale' ? damaged.why : '', /^has a damaged onnx-export\.json \(.*JSON/);
    assert.deepEqual(await inspect('null'), { state: 'stale', why: 'has a damaged onnx-export.json' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('exportCacheDirs: MODEL/onnx (or cacheDir), then a folder per model name and hash under the fallback', () => {
  assert.deepEqual(exportCacheDirs('/m', 'tiny', 'f'.repeat(64), undefined, undefined), ['/m/onnx']);
  assert.deepEqual(exportCacheDirs('/m', 'tiny', 'f'.repeat(64), '/c', '/home/.cache/ape/onnx'), [
    '/c',
    `/home/.cache/ape/onnx/tiny-${'f'.repeat(16)}`,
  ]);
});

test('a cached export with another opset, a truncated segment or a missing segment is made again and gives the same predictions', async () => {
  const model = await loadModel(shipped, { engine: 'tfjs', inputSize: 128 });
  const cache = await mkdtemp(join(tmpdir(), 'ape-onnx-stale-'));
  const source = { dir: shipped, files: [join(shipped, 'config.json'), join(shipped, 'model.safetensors')] };
  try {
    const scene = await readImage(join(repoRoot, 'examples/scene-2.png'));
    const reference = await model.predict(scene, prompts);
    const run = async () => {
      const messages: string[] = [];
      const engine = new OrtEngine(model, source, { cacheDir: cache, onExport: (m) => messages.push(m) });
      model.setInferenceRunner(engine);
      try {
        assertSameInstances(await model.predict(scene, prompts), reference);
      } finally {
        model.setInferenceRunner(null);
        await engine.release();
      }
      return messages;
    };
    // The vocabulary scoring's graphs are made first (prompts are normalised before the forward).
    const made = (await run()).filter((m) => !m.includes('scores-'));
    assert.match(
      made.join('\n'),
      new RegExp(`^exporting tiny to ONNX for ${key} .*\\.\\.\\.\nexported in [\\d.]+ s to `),
    );
    assert.deepEqual(await run(), [], 'a fitting export is loaded, not made again');
    const dir = join(cache, key);
    const manifestPath = join(dir, MANIFEST_FILE);
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));

    await writeFile(manifestPath, JSON.stringify({ ...manifest, opset: 13 }));
    const opset = await run();
    assert.equal(
      opset[0],
      `the ONNX export in ${dir} has opset 13; this exporter writes opset ${OPSET}; making it again`,
    );
    assert.match(opset[1]!, /^exporting tiny to ONNX/);

    const segment = join(dir, manifest.segments[0].file);
    await truncate(segment, Math.floor((await readFile(segment)).length / 2));
    const truncated = await run();
    assert.match(
      truncated[0]!,
      new RegExp(
        `^the ONNX export in ${dir} is unusable \\(OrtNetwork: ONNX Runtime refused .*segment-0\\.onnx: .*\\); making it again$`,
      ),
    );
    assert.match(truncated[1]!, /^exporting tiny to ONNX/);

    await unlink(join(dir, manifest.segments[1].file));
    const missing = await run();
    assert.match(missing[0]!, /is unusable \(OrtNetwork: cannot read .*segment-1\.onnx: ENOENT/);
    assert.deepEqual(await run(), []);
  } finally {
    model.dispose();
    await rm(cache, { recursive: true, force: true });
  }
});

test('a model folder that cannot be written keeps its exports in $APE_HOME/onnx/NAME-HASH, where the next load finds them', async () => {
  const work = await mkdtemp(join(tmpdir(), 'ape-onnx-readonly-'));
  const previous = process.env.APE_HOME;
  const dir = join(work, 'installed', 'model');
  try {
    await mkdir(dir, { recursive: true });
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json'])
      await copyFile(join(shipped, f), join(dir, f));
    // MODEL/onnx as a file: no folder can be made there, not even by root (whom permissions do not stop).
    await writeFile(join(dir, 'onnx'), '');
    if (process.getuid?.() !== 0) await chmod(dir, 0o555);
    process.env.APE_HOME = join(work, 'home');
    const hash = await filesHash([join(dir, 'config.json'), join(dir, 'model.safetensors')]);
    const fallback = join(work, 'home', 'onnx', `tiny-${hash.slice(0, 16)}`, key);

    const scene = await readImage(join(repoRoot, 'examples/scene-2.png'));
    const messages: string[] = [];
    const model = await loadModel(dir, { inputSize: 128, ort: { onExport: (m) => messages.push(m) } });
    assert.equal(model.inferenceEngine, 'ort');
    const first = await model.predict(scene, prompts);
    model.dispose();
    // The text tower's export (made first, for the prompts) takes the same way.
    const textKey = 'text-b1.8.64-l3.6.12.16';
    const textMessages = messages.filter((m) => m.includes(textKey));
    assert.equal(textMessages.length, 3, textMessages.join('; '));
    assert.ok(
      (await readdir(join(fallback, '..', textKey))).includes(TEXT_MANIFEST_FILE),
      `no text export in ${join(fallback, '..')}`,
    );
    messages.splice(0, messages.length, ...messages.filter((m) => !m.includes(textKey) && !m.includes('scores-')));
    assert.match(messages[0]!, new RegExp(`^exporting tiny to ONNX for ${key}`));
    assert.match(
      messages[1]!,
      new RegExp(
        `^cannot write ${join(dir, 'onnx', key)} \\((ENOTDIR|EEXIST|EACCES)\\); caching the export in ${fallback} instead$`,
      ),
    );
    assert.match(messages[2]!, new RegExp(`^exported in [\\d.]+ s to ${fallback}$`));
    assert.ok((await readdir(fallback)).includes(MANIFEST_FILE), `no manifest in ${fallback}`);

    messages.length = 0;
    const again = await loadModel(dir, { inputSize: 128, ort: { onExport: (m) => messages.push(m) } });
    assertSameInstances(await again.predict(scene, prompts), first);
    again.dispose();
    assert.deepEqual(messages, []);
  } finally {
    if (previous === undefined) delete process.env.APE_HOME;
    else process.env.APE_HOME = previous;
    await chmod(dir, 0o755).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
});
