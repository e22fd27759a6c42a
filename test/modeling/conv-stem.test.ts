import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf, initEngine } from '../../src/engine/engine.js';
import { ConvStem } from '../../src/modeling/backbone/conv-stem.js';
import { ApeBackbone } from '../../src/modeling/backbone/ape-backbone.js';
import { validateConfig } from '../../src/modeling/config.js';
import { checkModelConfig } from '../../src/inference/model-folder.js';
import { Rng } from '../../src/util/random.js';
import { microConfig } from './micro-config.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
  await import('../../src/engine/gradients-node.js');
});

/** Loop reference: 3x3 pad-1 conv (HWIO weight, stride 2 or 1) on one HWC image. */
function convLoop(
  x: Float32Array,
  h: number,
  w: number,
  c: number,
  weight: Float32Array,
  o: number,
  stride = 2,
): { y: Float32Array; h: number; w: number } {
  const oh = Math.floor((h - 1) / stride) + 1;
  const ow = Math.floor((w - 1) / stride) + 1;
  const y = new Float32Array(oh * ow * o);
  for (let i = 0; i < oh; i++) {
    for (let j = 0; j < ow; j++) {
      for (let a = 0; a < 3; a++) {
        for (let b = 0; b < 3; b++) {
          const yi = stride * i - 1 + a;
          const xj = stride * j - 1 + b;
          if (yi < 0 || yi >= h || xj < 0 || xj >= w) continue;
          for (let k = 0; k < c; k++) {
            for (let m = 0; m < o; m++)
              y[(i * ow + j) * o + m]! += x[(yi * w + xj) * c + k]! * weight[((a * 3 + b) * c + k) * o + m]!;
          }
        }
      }
    }
  }
  return { y, h: oh, w: ow };
}

/** Per-pixel LayerNorm (eps 1e-6, given affine) then exact GELU. */
function normGeluLoop(x: Float32Array, c: number, gamma: Float32Array, beta: Float32Array): Float32Array {
  const erf = (v: number) => {
    // Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7).
    const t = 1 / (1 + 0.3275911 * Math.abs(v));
    const y =
      1 -
      ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
        t *
        Math.exp(-v * v);
    return v >= 0 ? y : -y;
  };
  const out = new Float32Array(x.length);
  for (let p = 0; p < x.length / c; p++) {
    let mean = 0;
    for (let k = 0; k < c; k++) mean += x[p * c + k]! / c;
    let variance = 0;
    for (let k = 0; k < c; k++) variance += (x[p * c + k]! - mean) ** 2 / c;
    for (let k = 0; k < c; k++) {
      const v = ((x[p * c + k]! - mean) / Math.sqrt(variance + 1e-6)) * gamma[k]! + beta[k]!;
      out[p * c + k] = 0.5 * v * (1 + erf(v / Math.SQRT2));
    }
  }
  return out;
}

test('ConvStem equals a loop reference: stride-2 convs, channel LayerNorm, GELU, per-level projection', () => {
  const levels = { names: ['p2', 'p3'], strides: [4, 8] };
  const stem = new ConvStem({ channels: [3, 4, 5] }, levels, 2, 1e-6, new Rng(4));
  assert.deepEqual(
    stem.outputs.map((o) => [o.level, o.stage]),
    [
      ['p2', 1],
      ['p3', 2],
    ],
  );
  const params = stem.namedParameters();
  assert.deepEqual([...params.keys()].sort(), [
    'convs.0.weight',
    'convs.1.weight',
    'convs.2.weight',
    'norms.0.bias',
    'norms.0.weight',
    'norms.1.bias',
    'norms.1.weight',
    'norms.2.bias',
    'norms.2.weight',
    'proj_p2.bias',
    'proj_p2.weight',
    'proj_p3.bias',
    'proj_p3.weight',
  ]);
  // Projections start at zero; give every affine parameter distinct values for the comparison.
  const rng = new Rng(9);
  for (const [name, v] of params)
    v.assign(tf.randomNormal(v.shape, name.includes('norms') ? 0.5 : 0, 0.4, 'float32', rng.seed()));
  const image = Float32Array.from({ length: 16 * 16 * 3 }, (_, i) => Math.sin(i * 0.37) * 1.5);
  const got = stem.forward(tf.tensor4d(image, [1, 16, 16, 3]));
  const value = (name: string) => params.get(name)!.dataSync() as Float32Array;
  let x: Float32Array = image;
  let [h, w, c] = [16, 16, 3];
  const stages: Array<{ y: Float32Array; c: number }> = [];
  for (const [k, o] of [3, 4, 5].entries()) {
    const conv = convLoop(x, h, w, c, value(`convs.${k}.weight`), o);
    x = normGeluLoop(conv.y, o, value(`norms.${k}.weight`), value(`norms.${k}.bias`));
    [h, w, c] = [conv.h, conv.w, o];
    stages.push({ y: x, c: o });
  }
  for (const [level, stage, side] of [
    ['p2', 1, 4],
    ['p3', 2, 2],
  ] as const) {
    const { y, c: ci } = stages[stage]!;
    const pw = value(`proj_${level}.weight`);
    const pb = value(`proj_${level}.bias`);
    const expected = new Float32Array(side * side * 2);
    for (let p = 0; p < side * side; p++) {
      for (let m = 0; m < 2; m++) {
        let s = pb[m]!;
        for (let k = 0; k < ci; k++) s += y[p * ci + k]! * pw[k * 2 + m]!;
        expected[p * 2 + m] = s;
      }
    }
    assert.deepEqual(got[level]!.shape, [1, side, side, 2]);
    const actual = got[level]!.dataSync();
    const worst = Math.max(...Array.from(actual, (v, i) => Math.abs(v - expected[i]!)));
    assert.ok(worst < 1e-4, `${level}: max abs diff ${worst}`);
  }
  for (const t of Object.values(got)) t.dispose();
});

test('a backbone with a fresh stem gives the same pyramid as without one, and its projections get gradients', () => {
  const config = microConfig();
  const plain = new ApeBackbone(config.backbone.vit, config.backbone.pyramid, new Rng(1));
  const stemmed = new ApeBackbone(config.backbone.vit, config.backbone.pyramid, new Rng(1), {
    channels: [8, 8, 16, 16],
  });
  const own = plain.namedParameters();
  for (const [name, v] of stemmed.namedParameters()) if (own.has(name)) v.assign(own.get(name)!);
  const images = tf.randomNormal([2, 64, 64, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
  const a = plain.forward(images);
  const b = stemmed.forward(images);
  assert.deepEqual(Object.keys(b), ['p3', 'p4', 'p5']);
  for (const level of Object.keys(a)) assert.deepEqual(b[level]!.dataSync(), a[level]!.dataSync(), level);
  const stemParams = [...stemmed.namedParameters()].filter(([name]) => name.startsWith('stem.'));
  const { grads } = tf.variableGrads(
    () => {
      const out = stemmed.forward(images);
      return tf.add(tf.sum(tf.square(out.p3!)), tf.sum(tf.square(out.p4!))) as tf.Scalar;
    },
    stemParams.map(([, v]) => v),
  );
  const norm = (name: string) => tf.sum(tf.abs(grads[stemmed.namedParameters().get(name)!.name]!)).dataSync()[0]!;
  // Zero projections pass no gradient back to the convs yet, but get one themselves.
  assert.ok(norm('stem.proj_p3.weight') > 0 && norm('stem.proj_p4.weight') > 0);
  assert.equal(norm('stem.convs.0.weight'), 0);
  tf.dispose([images, ...Object.values(a), ...Object.values(b), ...Object.values(grads)]);
});

test('extraConvs 1: every stage is the stride-2 stage followed by x + gelu(norm(conv(x))), as a loop computes it', () => {
  const levels = { names: ['p2', 'p3'], strides: [4, 8] };
  const stem = new ConvStem({ channels: [3, 4, 5], extraConvs: 1 }, levels, 2, 1e-6, new Rng(4));
  const params = stem.namedParameters();
  assert.deepEqual(
    [...params.keys()].filter((n) => n.startsWith('refine.')),
    [0, 1, 2].flatMap((k) => [`refine.${k}.0.conv.weight`, `refine.${k}.0.norm.weight`, `refine.${k}.0.norm.bias`]),
  );
  const rng = new Rng(11);
  for (const [name, v] of params)
    v.assign(tf.randomNormal(v.shape, name.includes('norm') ? 0.5 : 0, 0.4, 'float32', rng.seed()));
  const image = Float32Array.from({ length: 12 * 12 * 3 }, (_, i) => Math.cos(i * 0.29) * 1.5);
  const input = tf.tensor4d(image, [1, 12, 12, 3]);
  const got = stem.stages(input);
  const value = (name: string) => params.get(name)!.dataSync() as Float32Array;
  let x: Float32Array = image;
  let [h, w, c] = [12, 12, 3];
  for (const [k, o] of [3, 4, 5].entries()) {
    const down = convLoop(x, h, w, c, value(`convs.${k}.weight`), o);
    [h, w, c] = [down.h, down.w, o];
    const staged = normGeluLoop(down.y, o, value(`norms.${k}.weight`), value(`norms.${k}.bias`));
    const refined = convLoop(staged, h, w, o, value(`refine.${k}.0.conv.weight`), o, 1);
    const branch = normGeluLoop(refined.y, o, value(`refine.${k}.0.norm.weight`), value(`refine.${k}.0.norm.bias`));
    x = staged.map((v, i) => v + branch[i]!);
    assert.deepEqual(got[k]!.shape, [1, h, w, o]);
    const actual = got[k]!.dataSync();
    const worst = Math.max(...Array.from(actual, (v, i) => Math.abs(v - x[i]!)));
    assert.ok(worst < 1e-4, `stage ${k}: max abs diff ${worst}`);
  }
  tf.dispose([input, ...got]);
});

test('receptive fields: one changed pixel changes exactly the stride-8 and stride-16 cells whose window covers it', () => {
  const levels = { names: ['p3', 'p4'], strides: [8, 16] };
  const [py, px] = [37, 50];
  const image = tf.randomNormal([1, 96, 96, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  const bumped = tf.tidy(() => {
    const mask = tf.buffer([1, 96, 96, 3]);
    for (let ch = 0; ch < 3; ch++) mask.set(3, 0, py, px, ch);
    return tf.add(image, mask.toTensor()) as tf.Tensor4D;
  });
  // By hand: a 3x3 pad-1 conv at input stride j widens the field by 2j and keeps it centred, so
  // stage cell i (stride s) sees rows s*i - half .. s*i + half. Plain stem: strides 2, 4, 8, 16
  // give fields 3, 7, 15, 31 (half 7 at stride 8, 15 at stride 16). With one stride-1 conv after
  // each stage: 3+4=7, 7+4=11, 11+8=19, 19+8=27, 27+16=43 at stride 8, 43+16=59, 59+32=91 at stride 16.
  for (const [extraConvs, halves] of [
    [0, { 2: 7, 3: 15 }],
    [1, { 2: 21, 3: 45 }],
  ] as const) {
    const stem = new ConvStem({ channels: [4, 4, 4, 4], extraConvs }, levels, 2, 1e-6, new Rng(6));
    const before = stem.stages(image);
    const after = stem.stages(bumped);
    for (const stage of [2, 3] as const) {
      const s = 2 ** (stage + 1);
      const half = halves[stage];
      const side = 96 / s;
      const a = before[stage]!.dataSync();
      const b = after[stage]!.dataSync();
      const changed: string[] = [];
      const expected: string[] = [];
      for (let i = 0; i < side; i++) {
        for (let j = 0; j < side; j++) {
          const cell = (i * side + j) * 4;
          if ([0, 1, 2, 3].some((ch) => a[cell + ch] !== b[cell + ch])) changed.push(`${i},${j}`);
          if (Math.abs(s * i - py) <= half && Math.abs(s * j - px) <= half) expected.push(`${i},${j}`);
        }
      }
      assert.deepEqual(changed, expected, `extraConvs ${extraConvs}, stride ${s} (field ${2 * half + 1} px)`);
    }
    tf.dispose([...before, ...after]);
    stem.dispose();
  }
  tf.dispose([image, bumped]);
});

test('extraConvs 0 keeps the stem parameter names (old checkpoints load), and its value is checked', () => {
  const levels = { names: ['p3'], strides: [8] };
  const names = (stem: ConvStem) => [...stem.namedParameters().keys()];
  const plain = names(new ConvStem({ channels: [4, 4, 4] }, levels, 2, 1e-6, new Rng(1)));
  assert.deepEqual(names(new ConvStem({ channels: [4, 4, 4], extraConvs: 0 }, levels, 2, 1e-6, new Rng(1))), plain);
  assert.deepEqual(plain, [
    'convs.0.weight',
    'convs.1.weight',
    'convs.2.weight',
    'norms.0.weight',
    'norms.0.bias',
    'norms.1.weight',
    'norms.1.bias',
    'norms.2.weight',
    'norms.2.bias',
    'proj_p3.weight',
    'proj_p3.bias',
  ]);
  const config = microConfig();
  const withStem = (extraConvs: number) => ({
    ...config,
    backbone: { ...config.backbone, stem: { channels: [4, 4, 4], extraConvs } },
  });
  for (const bad of [-1, 1.5]) {
    const message = new RegExp(`backbone\\.stem\\.extraConvs must be a non-negative integer, got ${bad}`);
    assert.throws(() => validateConfig(withStem(bad)), message);
    assert.throws(() => checkModelConfig(withStem(bad), 'config.json'), message);
    assert.throws(
      () => new ConvStem({ channels: [4, 4, 4], extraConvs: bad }, levels, 2, 1e-6, new Rng(1)),
      /extraConvs must be a non-negative integer/,
    );
  }
  assert.deepEqual(checkModelConfig(withStem(2), 'config.json').backbone.stem, { channels: [4, 4, 4], extraConvs: 2 });
});

test('stem settings that cannot work are named', () => {
  const levels = { names: ['p3', 'p4'], strides: [8, 16] };
  assert.throws(
    () => new ConvStem({ channels: [4, 4] }, levels, 2, 1e-6, new Rng(1)),
    /last stage \(stride 4\) must match a pyramid level stride \(8, 16\)/,
  );
  assert.throws(
    () => new ConvStem({ channels: [4, 4, 4, 4, 4] }, levels, 2, 1e-6, new Rng(1)),
    /last stage \(stride 32\)/,
  );
  const config = microConfig();
  assert.throws(
    () => validateConfig({ ...config, backbone: { ...config.backbone, stem: { channels: [4, 4] } } }),
    /backbone\.stem\.channels has 2 stride-2 stages \(stride 4\), which is not a pyramid stride \(8, 16, 32\)/,
  );
  assert.throws(
    () =>
      validateConfig({
        ...config,
        backbone: { ...config.backbone, stem: { channels: [4, 4, 4], extraConvz: 1 } as never },
      }),
    /backbone\.stem has unknown settings 'extraConvz' \(known: channels, extraConvs\)/,
  );
  assert.throws(
    () => validateConfig({ ...config, backbone: { ...config.backbone, stem: { channels: [4, 0, 4] } } }),
    /backbone\.stem\.channels must be a non-empty list of positive integers/,
  );
  assert.throws(
    () =>
      validateConfig({
        ...config,
        input: { ...config.input, size: 48 },
        backbone: { ...config.backbone, stem: { channels: [4, 4, 4, 4, 4] } },
      }),
    /input\.size 48 is not a multiple of the conv stem's stride 32/,
  );
  // Model folders from before the stem (no backbone.stem) still load; a stem in the file is kept.
  const { stem: _none, ...old } = config.backbone;
  assert.equal(checkModelConfig({ ...config, backbone: old }, 'config.json').backbone.stem, undefined);
  assert.deepEqual(
    checkModelConfig({ ...config, backbone: { ...config.backbone, stem: { channels: [4, 4, 4] } } }, 'config.json')
      .backbone.stem,
    { channels: [4, 4, 4] },
  );
});
