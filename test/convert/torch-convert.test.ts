import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf, initEngine } from '../../src/engine/engine.js';
import { writeSafetensorsStreaming } from '../../src/io/safetensors-stream.js';
import { writeSafetensors, readSafetensors, type SafetensorsInput } from '../../src/io/safetensors.js';
import { readSafetensorsFile } from '../../src/io/safetensors-node.js';
import { releasedLayoutOfKey, releasedTargets } from '../../src/convert/released-mapping.js';
import { convertTorchCheckpoint } from '../../src/convert/convert-checkpoint.js';
import { Eva02Vit, type Eva02VitConfig, swigluHidden } from '../../src/modeling/backbone/eva02-vit.js';
import { SimpleFeaturePyramid } from '../../src/modeling/backbone/simple-feature-pyramid.js';
import { ClipTextEncoder } from '../../src/text/clip-text-transformer.js';
import type { Module } from '../../src/nn/module.js';
import { Rng } from '../../src/util/random.js';
import { bytesOf, checkpointPickle, torchArchive } from '../io/torch-test-writer.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fixtures = join(root, '../shared/fixtures/ape-reference');
const checkpointPath = join(fixtures, 'checkpoint.pth');
const dir = mkdtempSync(join(tmpdir(), 'ape-convert-'));
after(() => rmSync(dir, { recursive: true, force: true }));
before(async () => {
  await initEngine({ backend: 'wasm' });
});

const released = { targets: (key: string, info: { shape: number[] }) => releasedTargets(key, info.shape.length) };

test('the streaming safetensors writer produces the same bytes as writeSafetensors', async () => {
  const tensors: Record<string, SafetensorsInput> = {
    'b.weight': { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
    'a.bias': { dtype: 'F32', shape: [3], data: Float32Array.from([-1, 0.5, 7]) },
    ids: { dtype: 'I64', shape: [2], data: BigInt64Array.from([5n, -9n]) },
    mask: { dtype: 'U8', shape: [4], data: Uint8Array.from([1, 0, 0, 1]) },
    scalar: { dtype: 'F64', shape: [], data: Float64Array.from([Math.PI]) },
    empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  };
  const metadata = { format: 'pt', z: 'last', a: 'first' };
  const path = join(dir, 'stream.safetensors');
  const asked: string[] = [];
  const size = await writeSafetensorsStreaming(
    path,
    Object.entries(tensors).map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })),
    async (spec) => {
      asked.push(spec.name);
      const d = tensors[spec.name]!.data as ArrayBufferView;
      return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    },
    metadata,
  );
  const reference = writeSafetensors(tensors, metadata);
  const written = new Uint8Array(readFileSync(path));
  assert.equal(size, reference.length);
  assert.deepEqual(written, reference);
  // Asked for in file order: 8-byte types first, then 4-byte, then 1-byte; names sorted within.
  assert.deepEqual(asked, ['ids', 'scalar', 'a.bias', 'b.weight', 'empty', 'mask']);
  assert.deepEqual(readSafetensors(written).tensors.get('ids')?.data, BigInt64Array.from([5n, -9n]));
});

test('the streaming writer refuses a tensor of the wrong size and leaves no file behind', async () => {
  const path = join(dir, 'bad.safetensors');
  await assert.rejects(
    writeSafetensorsStreaming(path, [{ name: 'w', dtype: 'F32', shape: [3] }], async () => new Uint8Array(8)),
    /tensor 'w' \(\[3\] F32\) needs 12 bytes, got 8/,
  );
  assert.equal(existsSync(path), false);
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.startsWith('bad.')),
    [],
  );
});

test('released key mapping: layouts by rank and name, packed qkv and w12 split into parts', () => {
  assert.equal(releasedLayoutOfKey('model_vision.backbone.net.patch_embed.proj.weight', 4), 'conv');
  assert.equal(releasedLayoutOfKey('model_vision.class_embed.6.weight', 2), 'linear');
  assert.equal(releasedLayoutOfKey('model_vision.bbox_embed.0.layers.1.weight', 2), 'linear');
  assert.equal(
    releasedLayoutOfKey('model_vision.model_language.net.text.transformer.resblocks.0.attn.in_proj_weight', 2),
    'linear',
  );
  assert.equal(releasedLayoutOfKey('model_vision.model_language.net.text.token_embedding.weight', 2), 'asIs');
  assert.equal(releasedLayoutOfKey('model_vision.model_language.net.text.text_projection', 2), 'asIs');
  assert.equal(releasedLayoutOfKey('model_vision.transformer.level_embeds', 2), 'asIs');
  assert.equal(releasedLayoutOfKey('model_vision.backbone.net.blocks.0.norm1.weight', 1), 'asIs');
  assert.deepEqual(releasedTargets('model_vision.backbone.net.blocks.3.attn.qkv.weight', 2), [
    { name: 'backbone.net.blocks.3.attn.q_proj.weight', layout: 'linear', part: { index: 0, of: 3 } },
    { name: 'backbone.net.blocks.3.attn.k_proj.weight', layout: 'linear', part: { index: 1, of: 3 } },
    { name: 'backbone.net.blocks.3.attn.v_proj.weight', layout: 'linear', part: { index: 2, of: 3 } },
  ]);
  assert.deepEqual(
    releasedTargets('model_vision.backbone.net.blocks.0.mlp.w12.bias', 1).map((t) => [t.name, t.layout, t.part?.index]),
    [
      ['backbone.net.blocks.0.mlp.w1.bias', 'asIs', 0],
      ['backbone.net.blocks.0.mlp.w2.bias', 'asIs', 1],
    ],
  );
  assert.deepEqual(releasedTargets('optimizer.state.0.exp_avg', 1), []);
});

function fixtureVitConfig(): Eva02VitConfig {
  return {
    imgSize: 64,
    patchSize: 16,
    inChans: 3,
    embedDim: 64,
    depth: 4,
    numHeads: 4,
    mlpHidden: swigluHidden(64),
    qkvBias: true,
    windowSize: 2,
    windowBlockIndexes: [0, 2],
    attnSubLn: true,
    mlpSubLn: true,
    rope: true,
    ptHwSeqLen: 16,
    intpFreq: true,
    useAbsPos: true,
    pretrainImgSize: 48,
    pretrainUseClsToken: true,
    layerNormEps: 1e-6,
    dropPathRate: 0.4,
  };
}

function shapes(modules: [string, Module][]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const [prefix, m] of modules) for (const [name, v] of m.namedParameters(prefix)) out.set(name, [...v.shape]);
  return out;
}

async function loadInto(modules: [string, Module][], path: string): Promise<void> {
  const file = await readSafetensorsFile(path);
  for (const [prefix, m] of modules) {
    for (const [name, v] of m.namedParameters(prefix)) {
      const t = file.tensors.get(name);
      assert.ok(t, `converted file lacks ${name}`);
      assert.deepEqual(t.shape, v.shape, name);
      v.assign(tf.tensor(t.data as Float32Array, t.shape, 'float32'));
    }
  }
}

function fixtureCase(name: string): tf.Tensor {
  const file = readSafetensors(new Uint8Array(readFileSync(join(fixtures, 'cases.safetensors'))));
  const e = file.tensors.get(name)!;
  return tf.tensor(e.data as Float32Array, e.shape, 'float32');
}

test('the APE reference checkpoint converts for the ViT, pyramid and text tower; the converted ViT + pyramid reproduce APE', async () => {
  const vit = new Eva02Vit(fixtureVitConfig(), new Rng(1));
  const pyramid = new SimpleFeaturePyramid(
    { inChannels: 64, inStride: 16, outChannels: 32, scaleFactors: [4, 2, 1, 0.5], topBlock: true, layerNormEps: 1e-6 },
    new Rng(2),
  );
  const text = new ClipTextEncoder(
    {
      vocabSize: 49408,
      contextLength: 77,
      width: 32,
      heads: 4,
      layers: 2,
      mlpRatio: 4,
      embedDim: 48,
      layerNormEps: 1e-5,
    },
    new Rng(3),
  );
  const modules: [string, Module][] = [
    ['backbone.net.', vit],
    ['backbone.', pyramid],
    ['model_language.net.', text],
  ];
  const expected = shapes(modules);
  const out = join(dir, 'fixture.safetensors');
  const seen: string[] = [];
  const report = await convertTorchCheckpoint(checkpointPath, out, {
    ...released,
    expected,
    metadata: { preset: 'fixture' },
    onTensor: (_d, _n, name) => seen.push(name),
  });
  assert.deepEqual(report.missing, []);
  assert.equal(report.used.length, expected.size);
  assert.equal(seen.length, expected.size);
  assert.deepEqual(report.skippedTopLevel, ['optimizer', 'scheduler', 'iteration']);
  // Unused: RoPE buffers (recomputed), logit_scale, and the modules not built here.
  assert.ok(report.unused.includes('model_vision.backbone.net.rope_win.freqs_cos'));
  assert.ok(report.unused.includes('model_vision.model_language.net.logit_scale'));
  assert.ok(report.unused.includes('model_vision.transformer.encoder.vl_layers.0.b_attn.gamma_v'));
  assert.equal(report.used.length + report.unused.length, 200);
  const qProj = report.used.find((e) => e.name === 'backbone.net.blocks.0.attn.q_proj.weight')!;
  assert.equal(qProj.layout, 'linear');
  assert.equal(report.used.find((e) => e.name === 'backbone.net.patch_embed.proj.weight')!.layout, 'conv');
  assert.equal(report.used.find((e) => e.name === 'model_language.net.text.token_embedding.weight')!.layout, 'asIs');

  const file = await readSafetensorsFile(out);
  assert.equal(file.metadata.preset, 'fixture');
  assert.equal(file.tensors.size, expected.size);

  await loadInto(modules, out);
  const input = tf.transpose(fixtureCase('vit.input'), [0, 2, 3, 1]) as tf.Tensor4D;
  const feat = vit.forward(input);
  const diff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
  assert.ok(diff(tf.transpose(feat, [0, 3, 1, 2]), fixtureCase('vit.last_feat')) <= 1e-4);
  const levels = pyramid.forward(feat);
  for (const [name, t] of Object.entries(levels)) {
    const d = diff(tf.transpose(t, [0, 3, 1, 2]), fixtureCase(`vit.output.${name}`));
    assert.ok(d <= 5e-5, `${name}: ${d}`);
  }
  vit.dispose();
  pyramid.dispose();
  text.dispose();
});

test('an APE-Ti-style checkpoint: fused qkv and packed SwiGLU w12 are split into the parameters, values checked', async () => {
  // 2 x 6 fused qkv (dim 2): rows 0-1 q, 2-3 k, 4-5 v.
  const qkv = Float32Array.from({ length: 12 }, (_, i) => i + 1);
  const w12 = Float32Array.from({ length: 8 * 2 }, (_, i) => 100 + i); // [2*4, 2]
  const b12 = Float32Array.from({ length: 8 }, (_, i) => -i);
  const pkl = checkpointPickle({
    'model_vision.backbone.net.blocks.0.attn.qkv.weight': {
      storage: '0',
      storageType: 'FloatStorage',
      numel: 12,
      shape: [6, 2],
    },
    'model_vision.backbone.net.blocks.0.mlp.w12.weight': {
      storage: '1',
      storageType: 'HalfStorage',
      numel: 16,
      shape: [8, 2],
    },
    'model_vision.backbone.net.blocks.0.mlp.w12.bias': {
      storage: '2',
      storageType: 'FloatStorage',
      numel: 8,
      shape: [8],
    },
  });
  const halfOf = (v: number) => {
    const f = new Float32Array([v]);
    const u = new Uint32Array(f.buffer)[0]!;
    return ((u >> 16) & 0x8000) | ((((u >> 23) & 0xff) - 112) << 10) | ((u >> 13) & 0x3ff);
  };
  const path = join(dir, 'ti.pth');
  writeFileSync(
    path,
    torchArchive(pkl, { 0: bytesOf(qkv), 1: bytesOf(Uint16Array.from(w12, halfOf)), 2: bytesOf(b12) }),
  );
  const expected = new Map<string, number[]>([
    ['backbone.net.blocks.0.attn.q_proj.weight', [2, 2]],
    ['backbone.net.blocks.0.attn.k_proj.weight', [2, 2]],
    ['backbone.net.blocks.0.attn.v_proj.weight', [2, 2]],
    ['backbone.net.blocks.0.mlp.w1.weight', [2, 4]],
    ['backbone.net.blocks.0.mlp.w2.weight', [2, 4]],
    ['backbone.net.blocks.0.mlp.w1.bias', [4]],
    ['backbone.net.blocks.0.mlp.w2.bias', [4]],
  ]);
  const out = join(dir, 'ti.safetensors');
  const report = await convertTorchCheckpoint(path, out, { ...released, expected });
  assert.deepEqual(report.missing, []);
  assert.deepEqual(report.unused, []);
  const t = (await readSafetensorsFile(out)).tensors;
  const values = (n: string) => [...(t.get(n)!.data as Float32Array)];
  // torch [out, in] rows -> [in, out]: q rows [1, 2], [3, 4] -> [[1, 3], [2, 4]].
  assert.deepEqual(values('backbone.net.blocks.0.attn.q_proj.weight'), [1, 3, 2, 4]);
  assert.deepEqual(values('backbone.net.blocks.0.attn.k_proj.weight'), [5, 7, 6, 8]);
  assert.deepEqual(values('backbone.net.blocks.0.attn.v_proj.weight'), [9, 11, 10, 12]);
  // w1 = rows 0-3 of w12 ([100,101],[102,103],[104,105],[106,107]) transposed; values went through float16 exactly.
  assert.deepEqual(values('backbone.net.blocks.0.mlp.w1.weight'), [100, 102, 104, 106, 101, 103, 105, 107]);
  assert.deepEqual(values('backbone.net.blocks.0.mlp.w2.weight'), [108, 110, 112, 114, 109, 111, 113, 115]);
  assert.deepEqual(values('backbone.net.blocks.0.mlp.w1.bias'), [-0, -1, -2, -3]);
  assert.deepEqual(values('backbone.net.blocks.0.mlp.w2.bias'), [-4, -5, -6, -7]);
});

test('mismatched shapes and missing parameters stop the conversion before anything is written', async () => {
  const out = join(dir, 'never.safetensors');
  const vit = new Eva02Vit(fixtureVitConfig(), new Rng(1));
  const expected = shapes([['backbone.net.', vit]]);
  vit.dispose();
  expected.set('backbone.net.blocks.0.attn.proj.weight', [64, 32]);
  await assert.rejects(
    convertTorchCheckpoint(checkpointPath, out, { ...released, expected }),
    /model_vision\.backbone\.net\.blocks\.0\.attn\.proj\.weight \[64, 64\] \(linear → \[64, 64\]\) does not fit parameter 'backbone\.net\.blocks\.0\.attn\.proj\.weight' \[64, 32\]/,
  );
  expected.set('backbone.net.blocks.0.attn.proj.weight', [64, 64]);
  expected.set('backbone.net.blocks.9.norm1.weight', [64]);
  await assert.rejects(
    convertTorchCheckpoint(checkpointPath, out, { ...released, expected }),
    /1 parameter\(s\) of the model are not in the checkpoint: backbone\.net\.blocks\.9\.norm1\.weight/,
  );
  assert.equal(existsSync(out), false);
  // Not strict: written without it, and reported.
  const report = await convertTorchCheckpoint(checkpointPath, out, { ...released, expected, strict: false });
  assert.deepEqual(report.missing, ['backbone.net.blocks.9.norm1.weight']);
  assert.ok(existsSync(out));
});
