import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf, initEngine } from '../../src/engine/engine.js';
import {
  bicubicResizeMatrix,
  resizeGridBicubic,
  absolutePositionGrid,
} from '../../src/modeling/backbone/position-grid.js';
import { visionRopeTables, rotateHalf, ropeTensors, applyRope } from '../../src/modeling/backbone/rope.js';
import { windowLayout, windowPartition, windowUnpartition } from '../../src/modeling/backbone/window-attention.js';
import { SwiGlu } from '../../src/modeling/backbone/swiglu.js';
import { Eva02Attention } from '../../src/modeling/backbone/eva02-vit.js';
import { Rng } from '../../src/util/random.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

function seq(n: number, f: (i: number) => number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => f(i));
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  assert.ok(worst <= tol, `${what}: max abs diff ${worst} > ${tol}`);
}

test('bicubic resize matrix matches hand-computed PyTorch coefficients (3 -> 4, A = -0.75)', () => {
  const m = bicubicResizeMatrix(3, 4);
  // Output 0: source -0.125, floor -1, t = 0.875; taps at -2,-1,0,1 clamp to 0,0,0,1.
  // Weights: far(1.875) = -0.0102539, near(0.875) = 0.1147461, near(0.125) = 0.9672852, far(1.125) = -0.0717773.
  assertClose(m.subarray(0, 3), [1.0717773, -0.0717773, 0], 1e-6, 'row 0');
  // Output 1: source 0.625, floor 0, t = 0.625; taps -1,0,1,2 -> 0,0,1,2.
  const far = (x: number) => ((-0.75 * x + 3.75) * x - 6) * x + 3;
  const near = (x: number) => (1.25 * x - 2.25) * x * x + 1;
  assertClose(m.subarray(3, 6), [far(1.625) + near(0.625), near(0.375), far(1.375)], 1e-6, 'row 1');
  // Mirror symmetry and rows summing to one.
  for (let i = 0; i < 4; i++) {
    let s = 0;
    for (let j = 0; j < 3; j++) {
      s += m[i * 3 + j]!;
      assert.ok(Math.abs(m[i * 3 + j]! - m[(3 - i) * 3 + (2 - j)]!) < 1e-6);
    }
    assert.ok(Math.abs(s - 1) < 1e-6);
  }
  assert.deepEqual([...bicubicResizeMatrix(2, 2)], [1, 0, 0, 1]);
});

test('resizeGridBicubic equals the separable loop and keeps channels apart', () => {
  const [h, w, c, oh, ow] = [3, 4, 2, 5, 7];
  const grid = seq(h * w * c, (i) => Math.sin(i * 1.3));
  const ry = bicubicResizeMatrix(h, oh);
  const rx = bicubicResizeMatrix(w, ow);
  const expected = new Float32Array(oh * ow * c);
  for (let y = 0; y < oh; y++)
    for (let x = 0; x < ow; x++)
      for (let k = 0; k < c; k++) {
        let s = 0;
        for (let i = 0; i < h; i++)
          for (let j = 0; j < w; j++) s += ry[y * h + i]! * rx[x * w + j]! * grid[(i * w + j) * c + k]!;
        expected[(y * ow + x) * c + k] = s;
      }
  const out = resizeGridBicubic(tf.tensor3d(grid, [h, w, c]), oh, ow);
  assert.deepEqual(out.shape, [oh, ow, c]);
  assertClose(out.dataSync(), expected, 1e-5, 'resize');
  // The cls slot is skipped: a [1, 1 + 4, C] table at 2x2 maps to itself.
  const table = tf.tensor3d([[[99], [1], [2], [3], [4]]]);
  assert.deepEqual([...absolutePositionGrid(table, true, 2, 2).dataSync()], [1, 2, 3, 4]);
});

test('RoPE tables follow VisionRotaryEmbeddingFast (loop reference, intp_freq on and off)', () => {
  const headDim = 8;
  for (const interpolate of [true, false]) {
    const rows = 2;
    const cols = 3;
    const { cos, sin } = visionRopeTables(rows, cols, { headDim, ptSeqLen: 16, interpolate });
    // freqs = 1 / 10000^(arange(0, 4, 2) / 4) = [1, 0.01]; each repeated twice; rows then cols.
    const freqs = [1, 1, 0.01, 0.01];
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) {
        const tr = interpolate ? (r / rows) * 16 : r;
        const tc = interpolate ? (c / cols) * 16 : c;
        const angles = [...freqs.map((f) => tr * f), ...freqs.map((f) => tc * f)];
        const base = (r * cols + c) * headDim;
        assertClose(cos.subarray(base, base + headDim), angles.map(Math.cos), 1e-6, `cos ${r},${c}`);
        assertClose(sin.subarray(base, base + headDim), angles.map(Math.sin), 1e-6, `sin ${r},${c}`);
      }
  }
});

test('rotateHalf and applyRope match the pairwise rotation loop', () => {
  assert.deepEqual([...rotateHalf(tf.tensor2d([[1, 2, 3, 4]])).dataSync()], [-2, 1, -4, 3]);
  const heads = 2;
  const headDim = 8;
  const n = 4;
  const b = 2;
  const rope = ropeTensors(2, 2, heads, { headDim, ptSeqLen: 16, interpolate: true });
  const { cos, sin } = visionRopeTables(2, 2, { headDim, ptSeqLen: 16, interpolate: true });
  const c = heads * headDim;
  const x = seq(b * n * c, (i) => Math.cos(i * 0.7));
  const expected = new Float32Array(x.length);
  for (let bi = 0; bi < b; bi++)
    for (let t = 0; t < n; t++)
      for (let h = 0; h < heads; h++)
        for (let p = 0; p < headDim; p += 2) {
          const o = (bi * n + t) * c + h * headDim + p;
          const angleIndex = t * headDim + p;
          const [x0, x1] = [x[o]!, x[o + 1]!];
          expected[o] = x0 * cos[angleIndex]! - x1 * sin[angleIndex]!;
          expected[o + 1] = x1 * cos[angleIndex + 1]! + x0 * sin[angleIndex + 1]!;
        }
  assertClose(applyRope(tf.tensor3d(x, [b, n, c]), rope).dataSync(), expected, 1e-6, 'rope');
});

test('window partition: padding, order, and exact round trip', () => {
  const [b, h, w, c, ws] = [2, 5, 7, 3, 3];
  const x = tf.tensor4d(
    seq(b * h * w * c, (i) => i + 1),
    [b, h, w, c],
  );
  const layout = windowLayout(h, w, ws);
  assert.deepEqual([layout.paddedHeight, layout.paddedWidth], [6, 9]);
  const windows = windowPartition(x, layout);
  assert.deepEqual(windows.shape, [b * 2 * 3, ws * ws, c]);
  const wv = windows.arraySync();
  const xv = x.arraySync();
  // Window (image 1, window row 1, window col 2), token (1, 0) is pixel (4, 6); token (1, 1) is padding.
  const win = wv[1 * 6 + 1 * 3 + 2]!;
  assert.deepEqual(win[3], xv[1]![4]![6]);
  assert.deepEqual(win[4], [0, 0, 0]);
  assert.deepEqual(windowUnpartition(windows, layout, b).arraySync(), xv);
});

test('SwiGLU with sub-LN matches a loop reference', () => {
  const rng = new Rng(7);
  const mlp = new SwiGlu(4, 6, rng, { subLn: true, layerNormEps: 1e-6 });
  // Non-trivial norm parameters so the sub-LN affine part is exercised.
  mlp.ffnLn!.weight.assign(tf.tensor1d(seq(6, (i) => 1 + 0.1 * i)));
  mlp.ffnLn!.bias.assign(tf.tensor1d(seq(6, (i) => 0.05 * i - 0.1)));
  const x = seq(3 * 4, (i) => Math.sin(i));
  const [w1, b1, w2, b2, g, beta, w3, b3] = [
    mlp.w1.weight,
    mlp.w1.bias!,
    mlp.w2.weight,
    mlp.w2.bias!,
    mlp.ffnLn!.weight,
    mlp.ffnLn!.bias,
    mlp.w3.weight,
    mlp.w3.bias!,
  ].map((v) => v.dataSync());
  const expected: number[] = [];
  for (let r = 0; r < 3; r++) {
    const hidden: number[] = [];
    for (let j = 0; j < 6; j++) {
      let a = b1![j]!;
      let v = b2![j]!;
      for (let i = 0; i < 4; i++) {
        a += x[r * 4 + i]! * w1![i * 6 + j]!;
        v += x[r * 4 + i]! * w2![i * 6 + j]!;
      }
      hidden.push((a / (1 + Math.exp(-a))) * v);
    }
    const mean = hidden.reduce((s, v) => s + v, 0) / 6;
    const variance = hidden.reduce((s, v) => s + (v - mean) ** 2, 0) / 6;
    const normed = hidden.map((v, j) => ((v - mean) / Math.sqrt(variance + 1e-6)) * g![j]! + beta![j]!);
    for (let k = 0; k < 4; k++) {
      let o = b3![k]!;
      for (let j = 0; j < 6; j++) o += normed[j]! * w3![j * 4 + k]!;
      expected.push(o);
    }
  }
  assertClose(mlp.forward(tf.tensor2d(x, [3, 4])).dataSync(), expected, 1e-5, 'swiglu');
});

test('EVA-02 attention: q/v bias, no k bias, RoPE, scaled softmax, sub-LN, proj (loop reference)', () => {
  const rng = new Rng(11);
  const [dim, heads, n] = [8, 2, 4];
  const attn = new Eva02Attention(dim, heads, rng, { qkvBias: true, subLn: true, layerNormEps: 1e-6 });
  attn.qBias!.assign(tf.tensor1d(seq(dim, (i) => 0.1 * i)));
  attn.vBias!.assign(tf.tensor1d(seq(dim, (i) => -0.05 * i)));
  attn.proj.bias!.assign(tf.tensor1d(seq(dim, (i) => 0.01 * i)));
  const rope = ropeTensors(2, 2, heads, { headDim: dim / heads, ptSeqLen: 16, interpolate: true });
  const x = seq(n * dim, (i) => Math.cos(i * 0.37));
  const out = attn.forward(tf.tensor3d(x, [1, n, dim]), rope).dataSync();

  const W = (v: tf.Variable) => v.dataSync() as Float32Array;
  const lin = (inp: number[], w: Float32Array, bias: ArrayLike<number> | null, o: number) =>
    Array.from({ length: o }, (_, j) => inp.reduce((s, v, i) => s + v * w[i * o + j]!, bias ? bias[j]! : 0));
  const { cos, sin } = visionRopeTables(2, 2, { headDim: dim / heads, ptSeqLen: 16, interpolate: true });
  const hd = dim / heads;
  const rot = (v: number[], t: number) =>
    v.map((_, c) => {
      const p = c % hd;
      const a = t * hd + p;
      const partner = p % 2 === 0 ? -v[c + 1]! : v[c - 1]!;
      return v[c]! * cos[a]! + partner * sin[a]!;
    });
  const rows = Array.from({ length: n }, (_, t) => Array.from(x.subarray(t * dim, (t + 1) * dim)));
  const q = rows.map((r, t) => rot(lin(r, W(attn.qProj.weight), W(attn.qBias!), dim), t));
  const k = rows.map((r, t) => rot(lin(r, W(attn.kProj.weight), null, dim), t));
  const v = rows.map((r) => lin(r, W(attn.vProj.weight), W(attn.vBias!), dim));
  const ctx = rows.map(() => new Array<number>(dim).fill(0));
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < n; i++) {
      const logits = k.map((kr) =>
        kr.slice(h * hd, (h + 1) * hd).reduce((s, kv, c) => s + kv * q[i]![h * hd + c]! * hd ** -0.5, 0),
      );
      const m = Math.max(...logits);
      const e = logits.map((l) => Math.exp(l - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let j = 0; j < n; j++) for (let c = 0; c < hd; c++) ctx[i]![h * hd + c]! += (e[j]! / z) * v[j]![h * hd + c]!;
    }
  const g = W(attn.innerAttnLn!.weight);
  const bb = W(attn.innerAttnLn!.bias);
  const expected = ctx.flatMap((r) => {
    const mean = r.reduce((s, a) => s + a, 0) / dim;
    const varc = r.reduce((s, a) => s + (a - mean) ** 2, 0) / dim;
    const normed = r.map((a, c) => ((a - mean) / Math.sqrt(varc + 1e-6)) * g[c]! + bb[c]!);
    return lin(normed, W(attn.proj.weight), W(attn.proj.bias!), dim);
  });
  assertClose(out, expected, 1e-5, 'attention');
});

test('chunked attention (bounded score memory) equals the one-shot computation', async () => {
  const { scaledDotProductAttention } = await import('../../src/modeling/backbone/eva02-vit.js');
  const q = tf.randomNormal([5, 6, 4], 0, 1, 'float32', 1) as tf.Tensor3D;
  const k = tf.randomNormal([5, 6, 4], 0, 1, 'float32', 2) as tf.Tensor3D;
  const v = tf.randomNormal([5, 6, 4], 0, 1, 'float32', 3) as tf.Tensor3D;
  const whole = scaledDotProductAttention(q, k, v).dataSync();
  // 2 groups of 6x6 scores per chunk: chunks of 2, 2, 1.
  const chunked = scaledDotProductAttention(q, k, v, 72).dataSync();
  assertClose(chunked, whole, 1e-6, 'chunked');
});
