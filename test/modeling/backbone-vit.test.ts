import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tf, initEngine } from '../../src/engine/engine.js';
import '../../src/engine/gradients-node.js';
import {
  Eva02Vit,
  apeTiVitConfig,
  tinyVitConfig,
  swigluHidden,
  type Eva02VitConfig,
} from '../../src/modeling/backbone/eva02-vit.js';
import {
  SimpleFeaturePyramid,
  ConvTranspose2x2,
  maxPool2x2,
  subsample2,
} from '../../src/modeling/backbone/simple-feature-pyramid.js';
import { convertReleasedTensor } from '../../src/convert/released-mapping.js';
import { Rng } from '../../src/util/random.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const manifest = JSON.parse(readFileSync(`${root}../shared/fixtures/ape-reference/manifest.json`, 'utf8')) as {
  modules: { name: string; checkpoint_prefix: string; keys: { key: string; shape: number[] }[] }[];
};

before(async () => {
  await initEngine({ backend: 'wasm' });
});

/** The fixture's ViT: APE-D's options at small size (see the fixture README). */
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

/** Checkpoint keys (prefix stripped) with the shape they take in this project's layout. */
function expectedParams(moduleName: string, prefix: string, skip: RegExp): Map<string, number[]> {
  const mod = manifest.modules.find((m) => m.name === moduleName)!;
  const out = new Map<string, number[]>();
  for (const { key, shape } of mod.keys) {
    const name = key.slice(prefix.length);
    if (skip.test(name)) continue;
    const layout = shape.length === 4 ? 'conv' : shape.length === 2 && /weight$/.test(name) ? 'linear' : 'asIs';
    out.set(name, convertReleasedTensor(layout, shape, new Float32Array(shape.reduce((a, b) => a * b, 1))).shape);
  }
  return out;
}

test('ViT parameter names and shapes are exactly the released ones (fixture manifest)', () => {
  const vit = new Eva02Vit(fixtureVitConfig(), new Rng(1));
  const expected = expectedParams('vit', 'model_vision.backbone.net.', /rope/);
  const actual = new Map([...vit.namedParameters()].map(([k, v]) => [k, v.shape]));
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [k, s] of expected) assert.deepEqual(actual.get(k), s, k);
  vit.dispose();
});

test('pyramid parameter names and shapes are exactly the released ones', () => {
  const pyr = new SimpleFeaturePyramid(
    { inChannels: 64, inStride: 16, outChannels: 32, scaleFactors: [4, 2, 1, 0.5], topBlock: true, layerNormEps: 1e-6 },
    new Rng(2),
  );
  const expected = expectedParams('simple_feature_pyramid', 'model_vision.backbone.', /^$/);
  const actual = new Map([...pyr.namedParameters()].map(([k, v]) => [k, v.shape]));
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [k, s] of expected) assert.deepEqual(actual.get(k), s, k);
  assert.deepEqual(pyr.featureNames, ['p2', 'p3', 'p4', 'p5', 'p6']);
  assert.deepEqual(pyr.strides, [4, 8, 16, 32, 64]);
  pyr.dispose();
});

test('tiny ViT + pyramid: shapes at 256x256 and a non-square, non-window-multiple input', () => {
  const vit = new Eva02Vit(tinyVitConfig(), new Rng(3));
  const pyr = new SimpleFeaturePyramid(
    {
      inChannels: 192,
      inStride: 16,
      outChannels: 64,
      scaleFactors: [4, 2, 1, 0.5],
      topBlock: true,
      layerNormEps: 1e-6,
    },
    new Rng(4),
  );
  const before = tf.memory().numTensors;
  for (const [h, w] of [
    [256, 256],
    [160, 224],
  ] as const) {
    tf.tidy(() => {
      const feat = vit.forward(tf.randomNormal([1, h, w, 3], 0, 1, 'float32', 5) as tf.Tensor4D);
      assert.deepEqual(feat.shape, [1, h / 16, w / 16, 192]);
      const levels = pyr.forward(feat);
      const gh = h / 16;
      const gw = w / 16;
      assert.deepEqual(levels.p2!.shape, [1, gh * 4, gw * 4, 64]);
      assert.deepEqual(levels.p3!.shape, [1, gh * 2, gw * 2, 64]);
      assert.deepEqual(levels.p4!.shape, [1, gh, gw, 64]);
      assert.deepEqual(levels.p5!.shape, [1, gh / 2, gw / 2, 64]);
      assert.deepEqual(levels.p6!.shape, [1, Math.ceil(gh / 4), Math.ceil(gw / 4), 64]);
      assert.ok(Number.isFinite(tf.sum(levels.p2!).dataSync()[0]!));
    });
  }
  // Only the cached RoPE tables (global 16x16 and 10x14, window 8x8) outlive the forwards.
  assert.equal(tf.memory().numTensors - before, 6);
  vit.dispose();
  pyr.dispose();
});

test('gradients reach every ViT and pyramid parameter (training mode with drop path)', () => {
  const cfg: Eva02VitConfig = {
    ...tinyVitConfig(),
    embedDim: 32,
    numHeads: 2,
    depth: 3,
    mlpHidden: 40,
    windowBlockIndexes: [0, 2],
    windowSize: 3,
  };
  const vit = new Eva02Vit(cfg, new Rng(5));
  const pyr = new SimpleFeaturePyramid(
    { inChannels: 32, inStride: 16, outChannels: 8, scaleFactors: [4, 2, 1, 0.5], topBlock: true, layerNormEps: 1e-6 },
    new Rng(6),
  );
  const images = tf.randomNormal([2, 64, 80, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
  const rng = new Rng(8);
  const vars = [...vit.trainableVariables(), ...pyr.trainableVariables()];
  const { grads } = tf.variableGrads(() => {
    const levels = pyr.forward(vit.forward(images, { training: true, rng }));
    return tf.addN(Object.values(levels).map((t) => tf.mean(tf.square(t)))) as tf.Scalar;
  }, vars);
  const names = new Map([
    ...vit.namedParameters(),
    ...[...pyr.namedParameters()].map(([k, v]) => [`pyramid.${k}`, v] as const),
  ]);
  for (const [name, v] of names) {
    const g = grads[v.name];
    assert.ok(g, `no gradient for ${name}`);
    const norm = tf.norm(g).dataSync()[0]!;
    assert.ok(Number.isFinite(norm) && norm > 0, `${name}: gradient norm ${norm}`);
  }
  assert.throws(() => vit.forward(images, { training: true }), /needs options.rng/);
  vit.dispose();
  pyr.dispose();
});

test('ConvTranspose2x2 as matMul equals the scatter loop (torch weight layout converted)', () => {
  const [b, h, w, ci, co] = [1, 2, 3, 3, 2];
  const m = new ConvTranspose2x2(ci, co, new Rng(9));
  // torch weight [in, out, kh, kw]
  const torchW = Float32Array.from({ length: ci * co * 4 }, (_, i) => Math.sin(i + 1));
  const conv = convertReleasedTensor('conv', [ci, co, 2, 2], torchW);
  m.weight.assign(tf.tensor4d(conv.data, conv.shape as [number, number, number, number]));
  m.bias.assign(tf.tensor1d([0.5, -0.25]));
  const x = Float32Array.from({ length: b * h * w * ci }, (_, i) => Math.cos(i));
  const expected = new Float32Array(b * 2 * h * 2 * w * co);
  for (let y = 0; y < h; y++)
    for (let xx = 0; xx < w; xx++)
      for (let ky = 0; ky < 2; ky++)
        for (let kx = 0; kx < 2; kx++)
          for (let o = 0; o < co; o++) {
            let s = o === 0 ? 0.5 : -0.25;
            for (let i = 0; i < ci; i++) s += x[(y * w + xx) * ci + i]! * torchW[((i * co + o) * 2 + ky) * 2 + kx]!;
            expected[((2 * y + ky) * 2 * w + (2 * xx + kx)) * co + o] = s;
          }
  const out = m.forward(tf.tensor4d(x, [b, h, w, ci]));
  assert.deepEqual(out.shape, [b, 2 * h, 2 * w, co]);
  const got = out.dataSync();
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(got[i]! - expected[i]!) < 1e-5, `element ${i}`);
});

test('maxPool2x2 floors odd sizes; subsample2 takes every other pixel from the first', () => {
  const x = tf.tensor4d(
    Float32Array.from({ length: 5 * 5 }, (_, i) => ((i * 7) % 11) - 5),
    [1, 5, 5, 1],
  );
  const v = x.dataSync();
  const pooled = maxPool2x2(x);
  assert.deepEqual(pooled.shape, [1, 2, 2, 1]);
  const expected = [0, 1, 0, 1].map((_, k) => {
    const [py, px] = [Math.floor(k / 2), k % 2];
    return Math.max(
      v[2 * py * 5 + 2 * px]!,
      v[2 * py * 5 + 2 * px + 1]!,
      v[(2 * py + 1) * 5 + 2 * px]!,
      v[(2 * py + 1) * 5 + 2 * px + 1]!,
    );
  });
  assert.deepEqual([...pooled.dataSync()], expected);
  const sub = subsample2(x);
  assert.deepEqual(sub.shape, [1, 3, 3, 1]);
  assert.deepEqual(
    [...sub.dataSync()],
    [0, 2, 4, 10, 12, 14, 20, 22, 24].map((i) => v[i]!),
  );
});

test('APE-Ti and tiny presets build with the expected parameter counts', () => {
  const countVit = (c: Eva02VitConfig): number => {
    const d = c.embedDim;
    const block =
      4 * d +
      2 * d +
      3 * d * d +
      (c.attnSubLn ? 2 * d : 0) +
      d * d +
      d +
      2 * (d * c.mlpHidden + c.mlpHidden) +
      (c.mlpSubLn ? 2 * c.mlpHidden : 0) +
      c.mlpHidden * d +
      d;
    const grid = (c.pretrainImgSize / c.patchSize) ** 2 + 1;
    return c.patchSize ** 2 * c.inChans * d + d + grid * d + c.depth * block;
  };
  for (const cfg of [apeTiVitConfig(), tinyVitConfig()]) {
    const vit = new Eva02Vit(cfg, new Rng(10));
    assert.equal(vit.parameterCount(), countVit(cfg));
    vit.dispose();
  }
});
