import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Rng } from '../../src/util/random.js';
import { initEngine } from '../../src/engine/engine.js';
import { msDeformAttn } from '../../src/engine/ms-deform-attn.js';
import { readSafetensors, toFloat32 } from '../../src/io/safetensors.js';
import { assertClose, evaluate, randomArray, tf, type Input } from './check.js';

interface Problem {
  shapes: [number, number][];
  bs: number;
  heads: number;
  dHead: number;
  numQuery: number;
  points: number;
  value: Float32Array;
  loc: Float32Array;
  weights: Float32Array;
}

/**
 * Plain-loop reference, in float64, written the way grid_sample reads: pixel coordinate
 * loc * size - 0.5, four neighbours, each read as zero when off the map.
 */
function reference(p: Problem, value = p.value, loc = p.loc, weights = p.weights): Float64Array {
  const { shapes, bs, heads, dHead, numQuery, points } = p;
  const levels = shapes.length;
  const numValue = shapes.reduce((s, [h, w]) => s + h * w, 0);
  const out = new Float64Array(bs * numQuery * heads * dHead);
  const read = (
    b: number,
    start: number,
    w: number,
    h: number,
    x: number,
    y: number,
    hd: number,
    c: number,
  ): number => {
    if (x < 0 || y < 0 || x >= w || y >= h) return 0;
    return value[((b * numValue + start + y * w + x) * heads + hd) * dHead + c]!;
  };
  for (let b = 0; b < bs; b++) {
    for (let q = 0; q < numQuery; q++) {
      for (let hd = 0; hd < heads; hd++) {
        let start = 0;
        for (let l = 0; l < levels; l++) {
          const [h, w] = shapes[l]!;
          for (let pt = 0; pt < points; pt++) {
            const s = (((b * numQuery + q) * heads + hd) * levels + l) * points + pt;
            const x = loc[2 * s]! * w - 0.5;
            const y = loc[2 * s + 1]! * h - 0.5;
            const x0 = Math.floor(x);
            const y0 = Math.floor(y);
            const fx = x - x0;
            const fy = y - y0;
            for (let c = 0; c < dHead; c++) {
              const v =
                (1 - fx) * (1 - fy) * read(b, start, w, h, x0, y0, hd, c) +
                fx * (1 - fy) * read(b, start, w, h, x0 + 1, y0, hd, c) +
                (1 - fx) * fy * read(b, start, w, h, x0, y0 + 1, hd, c) +
                fx * fy * read(b, start, w, h, x0 + 1, y0 + 1, hd, c);
              out[((b * numQuery + q) * heads + hd) * dHead + c]! += weights[s]! * v;
            }
          }
          start += h * w;
        }
      }
    }
  }
  return out;
}

/** Gradients of sum(reference * dy) by central differences in float64 (exact for value and weights). */
function referenceGrads(p: Problem, dy: Float32Array): Float64Array[] {
  const loss = (
    value: Float32Array | Float64Array,
    loc: Float32Array | Float64Array,
    weights: Float32Array | Float64Array,
  ): number => {
    const y = reference(p, value as Float32Array, loc as Float32Array, weights as Float32Array);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i]! * dy[i]!;
    return s;
  };
  const args = [Float64Array.from(p.value), Float64Array.from(p.loc), Float64Array.from(p.weights)];
  return args.map((arr, which) => {
    const g = new Float64Array(arr.length);
    const eps = which === 1 ? 1e-6 : 1e-3;
    for (let i = 0; i < arr.length; i++) {
      const keep = arr[i]!;
      arr[i] = keep + eps;
      const plus = loss(args[0]!, args[1]!, args[2]!);
      arr[i] = keep - eps;
      const minus = loss(args[0]!, args[1]!, args[2]!);
      arr[i] = keep;
      g[i] = (plus - minus) / (2 * eps);
    }
    return g;
  });
}

function problem(rng: Rng): Problem {
  const shapes: [number, number][] = [
    [4, 5],
    [2, 3],
    [1, 1],
  ];
  const bs = 2,
    heads = 2,
    dHead = 3,
    numQuery = 5,
    points = 3;
  const numValue = shapes.reduce((s, [h, w]) => s + h * w, 0);
  const samples = bs * numQuery * heads * shapes.length * points;
  const loc = randomArray(rng, 2 * samples, -0.2, 1.2);
  // Borders and corners exactly (pixel -0.5 and size - 0.5, half outside the map), and points far
  // off the map (x = -0.6 at loc[56], y = 1.7 at loc[77]). 0.37 avoids pixel-centre kinks.
  const special = [0, 0, 1, 1, 0, 1, 1, 0, -0.6, 0.37, 0.37, 1.7, 0.0, 0.37, 1.0, 0.37, 0.37, 0.0, 0.37, 1.0];
  special.forEach((v, i) => (loc[i * 7] = v));
  return {
    shapes,
    bs,
    heads,
    dHead,
    numQuery,
    points,
    value: randomArray(rng, bs * numValue * heads * dHead),
    loc,
    weights: randomArray(rng, samples, 0, 1),
  };
}

function inputsOf(p: Problem): Input[] {
  const levels = p.shapes.length;
  const numValue = p.shapes.reduce((s, [h, w]) => s + h * w, 0);
  return [
    { shape: [p.bs, numValue, p.heads, p.dHead], data: p.value },
    { shape: [p.bs, p.numQuery, p.heads, levels, p.points, 2], data: p.loc },
    { shape: [p.bs, p.numQuery, p.heads, levels, p.points], data: p.weights },
  ];
}

for (const backend of ['wasm', 'cpu'] as const) {
  test(`msDeformAttn on ${backend}: output and gradients equal a plain-loop reference`, async () => {
    const rng = new Rng(41);
    const p = problem(rng);
    const dy = randomArray(rng, p.bs * p.numQuery * p.heads * p.dHead);
    const f = (v?: tf.Tensor, l?: tf.Tensor, w?: tf.Tensor) => msDeformAttn(v as tf.Tensor4D, p.shapes, l!, w!);
    const got = await evaluate(backend, f, inputsOf(p), dy);
    assert.deepEqual(got.shape, [p.bs, p.numQuery, p.heads * p.dHead]);
    assertClose(got.value, reference(p), 1e-6, 'output');
    const [gValue, gLoc, gWeights] = referenceGrads(p, dy);
    assertClose(got.grads[0]!, gValue!, 1e-5, 'd value');
    assertClose(got.grads[1]!, gLoc!, 2e-4, 'd sampling locations');
    assertClose(got.grads[2]!, gWeights!, 1e-5, 'd attention weights');
    // A point far off the map (sample 28, x at loc[56]) contributes nothing and gets no gradient.
    assert.equal(got.grads[2]![28], 0);
    assert.equal(got.grads[1]![56], 0);
    assert.equal(got.grads[1]![57], 0);
  });
}

test('msDeformAttn accepts rank-4 locations and weights and gives gradients of the same shapes', async () => {
  await initEngine({ backend: 'wasm' });
  const p = problem(new Rng(42));
  const [value, loc6, w5] = inputsOf(p).map((x) => tf.tensor(x.data, x.shape));
  const loc4 = tf.reshape(loc6!, [p.bs, p.numQuery, p.heads, -1]);
  const w4 = tf.reshape(w5!, [p.bs, p.numQuery, p.heads, -1]);
  const a = msDeformAttn(value as tf.Tensor4D, p.shapes, loc6!, w5!);
  const b = msDeformAttn(value as tf.Tensor4D, p.shapes, loc4, w4);
  assert.deepEqual(Array.from(await a.data()), Array.from(await b.data()));
  const grads = tf.grads((l: tf.Tensor, w: tf.Tensor) => msDeformAttn(value as tf.Tensor4D, p.shapes, l, w))([
    loc4,
    w4,
  ]);
  assert.deepEqual(
    grads.map((g) => g.shape),
    [loc4.shape, w4.shape],
  );
  tf.dispose([value!, loc6!, w5!, loc4, w4, a, b, ...grads]);
});

test('msDeformAttn names the bad argument', async () => {
  await initEngine({ backend: 'wasm' });
  const value = tf.zeros([1, 5, 2, 4]) as tf.Tensor4D;
  const loc = tf.zeros([1, 3, 2, 1, 2, 2]);
  const w = tf.zeros([1, 3, 2, 1, 2]);
  assert.throws(() => msDeformAttn(value, [[2, 3]], loc, w), /S=5 rows but spatialShapes \[2,3\] cover 6/);
  assert.throws(() => msDeformAttn(value, [[1, 5]], tf.zeros([1, 3, 2, 1, 2, 3]), w), /samplingLocations/);
  assert.throws(() => msDeformAttn(value, [[1, 5]], loc, tf.zeros([1, 3, 3, 1, 2])), /attentionWeights/);
  assert.throws(() => msDeformAttn(tf.zeros([5, 2, 4]) as unknown as tf.Tensor4D, [[1, 5]], loc, w), /value must be/);
  tf.dispose([value, loc, w]);
});

test('msDeformAttn reproduces APE reference outputs (msda_core and the module core calls)', async () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  // A plain Uint8Array copy: readSafetensors mis-decodes a Node Buffer (Buffer.slice shares memory).
  const file = readSafetensors(
    new Uint8Array(readFileSync(join(root, '../shared/fixtures/ape-reference/cases.safetensors'))),
  );
  const get = (name: string) => {
    const entry = file.tensors.get(name);
    assert.ok(entry, `fixture tensor ${name}`);
    return { shape: entry.shape, data: toFloat32(entry) };
  };
  const cases: [prefix: string, shapesName: string][] = [
    ['msda.', 'msda.spatial_shapes'],
    ['msda_enc.core_', 'msda_enc.spatial_shapes'],
    ['msda_dec.core_', 'msda_dec.spatial_shapes'],
  ];
  for (const backend of ['wasm', 'cpu'] as const) {
    await initEngine({ backend });
    for (const [prefix, shapesName] of cases) {
      const flat = Array.from(get(shapesName).data);
      const shapes: [number, number][] = [];
      for (let i = 0; i < flat.length; i += 2) shapes.push([flat[i]!, flat[i + 1]!]);
      const [v, l, w, o] = ['value', 'sampling_locations', 'attention_weights', 'output'].map((n) => get(prefix + n));
      const y = tf.tidy(() =>
        msDeformAttn(
          tf.tensor4d(v!.data, v!.shape as [number, number, number, number]),
          shapes,
          tf.tensor(l!.data, l!.shape),
          tf.tensor(w!.data, w!.shape),
        ),
      );
      assert.deepEqual(y.shape, o!.shape, `${backend} ${prefix} shape`);
      const got = await y.data();
      y.dispose();
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - o!.data[i]!));
      assert.ok(worst <= 1e-5, `${backend} ${prefix}output: max error ${worst}`);
    }
  }
});
