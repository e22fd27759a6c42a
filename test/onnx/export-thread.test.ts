import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/engine.js';
import { loadModel } from '../../src/inference/model-files.js';
import { makeExportInThread } from '../../src/inference/export-thread.js';
import { readImage } from '../../src/io/image-node.js';
import type { ExportProgressEvent } from '../../src/onnx/export-progress.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../../src/io/safetensors-node.js';
import { repoRoot } from '../cli/ape-cli.js';

await initEngine();

const shipped = join(repoRoot, 'models/default');

/** Every file under `dir` by relative path, with its bytes. */
async function folderFiles(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true }))
    if (entry.isFile()) {
      const path = join(entry.parentPath, entry.name);
      out.set(path.slice(dir.length + 1), await readFile(path));
    }
  return out;
}

test('predict on ort with exports made in a thread of their own (from the model files) writes the same files as exports made from the loaded model, with progress: modules recorded, then bytes written', async () => {
  const caches = await mkdtemp(join(tmpdir(), 'ape-export-thread-'));
  const events: ExportProgressEvent[] = [];
  const messages: string[] = [];
  const load = (exportThread: boolean) =>
    loadModel(shipped, {
      engine: 'ort',
      promptCache: false,
      ort: {
        exportThread,
        cacheDir: join(caches, String(exportThread)),
        onExport: (m) => messages.push(m),
        ...(exportThread ? { onExportProgress: (e: ExportProgressEvent) => events.push(e) } : {}),
      },
    });
  const inThread = await load(true);
  const inProcess = await load(false);
  try {
    const scene = await readImage(join(repoRoot, 'examples/scene-2.png'));
    const options = { vocabulary: ['circle', 'star'], sentences: ['the red star'], threshold: 0.2 };
    const a = await inThread.predict(scene, options);
    const b = await inProcess.predict(scene, options);
    assert.deepEqual(a, b);
    assert.ok(a.instances.length > 0);
    const [threadFiles, processFiles] = [
      await folderFiles(join(caches, 'true')),
      await folderFiles(join(caches, 'false')),
    ];
    // The network's export for one sentence, the text tower's, the vocabulary scoring's (made in process either way).
    assert.deepEqual([...threadFiles.keys()].sort(), [...processFiles.keys()].sort());
    assert.ok([...threadFiles.keys()].some((f) => f.startsWith('256-v0-s1/segment-0.onnx')));
    assert.ok([...threadFiles.keys()].some((f) => f.endsWith('text.onnx.data')));
    for (const [file, bytes] of threadFiles) assert.ok(bytes.equals(processFiles.get(file)!), `${file} differs`);
    assert.ok(messages.some((m) => /^exporting tiny to ONNX for 256-v0-s1 /.test(m)));

    // The text tower's 12 graphs, then its files; the network's modules, then its files.
    const phases = events.map((e) => `${e.phase} ${e.unit}`).filter((p, i, all) => p !== all[i - 1]);
    assert.deepEqual(phases, ['record graph', 'write byte', 'record module', 'write byte']);
    const writes = events.filter((e) => e.phase === 'write');
    const last = writes[writes.length - 1]!;
    assert.equal(last.done, last.total);
    const written = [...threadFiles]
      .filter(([f]) => f.startsWith('256-v0-s1/') && !f.endsWith('.json'))
      .reduce((n, [, bytes]) => n + bytes.length, 0);
    assert.equal(last.total, written);
  } finally {
    inThread.dispose();
    inProcess.dispose();
    await rm(caches, { recursive: true, force: true });
  }
});

test("an export thread that cannot make its export rejects with the thread's message (a weights file without a parameter names it)", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ape-export-thread-bad-'));
  try {
    const model = await loadModel(shipped, { engine: 'tfjs', promptCache: false });
    model.dispose();
    for (const file of ['config.json', 'tokenizer.json']) await copyFile(join(shipped, file), join(dir, file));
    const weights = await readSafetensorsFile(join(shipped, 'model.safetensors'));
    const dropped = [...weights.tensors.keys()].find((n) => n.startsWith('transformer.'))!;
    weights.tensors.delete(dropped);
    await writeSafetensorsFile(join(dir, 'model.safetensors'), weights.tensors);
    await assert.rejects(
      makeExportInThread({
        kind: 'network',
        files: { dir, config: model.config },
        shape: { size: 128, vocabulary: 0, sentences: 1 },
        hash: 'h',
        options: {},
      }),
      new RegExp(`model\\.safetensors: parameter '${dropped.replaceAll('.', '\\.')}' \\[[0-9, ]+\\] is missing`),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
