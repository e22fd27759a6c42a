import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TorchCheckpoint, listTorchCheckpoint, readTorchCheckpoint } from '../../src/io/torch/checkpoint.js';
import {
  PickleBytes,
  bytesOf,
  checkpointPickle,
  emitTensor,
  torchArchive,
  zipArchive,
  type TensorSpec,
} from './torch-test-writer.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fixtures = join(root, '../shared/fixtures/ape-reference');
const checkpointPath = join(fixtures, 'checkpoint.pth');

const dir = mkdtempSync(join(tmpdir(), 'ape-torch-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
function file(bytes: Uint8Array): string {
  const p = join(dir, `c${counter++}.pth`);
  writeFileSync(p, bytes);
  return p;
}

interface ManifestKey {
  key: string;
  shape: number[];
  dtype: string;
}
const manifest = JSON.parse(readFileSync(join(fixtures, 'manifest.json'), 'utf8')) as {
  modules: { keys: ManifestKey[] }[];
};

const sum = (a: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s;
};
const sumSq = (a: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return s;
};
const close = (a: number, b: number, rel: number) => Math.abs(a - b) <= rel * Math.max(1, Math.abs(b));

// ------------------------------------------------------------------ the APE reference checkpoint

test("fixture: 200 model keys with the manifest's shapes and dtypes; optimizer, scheduler, iteration skipped", async () => {
  const ckpt = await TorchCheckpoint.open(checkpointPath);
  try {
    assert.equal(ckpt.root, 'model');
    assert.deepEqual(ckpt.skipped, ['optimizer', 'scheduler', 'iteration']);
    const list = ckpt.list();
    assert.equal(list.size, 200);
    const expected = manifest.modules.flatMap((m) => m.keys);
    assert.equal(expected.length, 198);
    for (const k of expected) {
      const info = list.get(k.key);
      assert.ok(info, `missing ${k.key}`);
      assert.deepEqual(info.shape, k.shape, k.key);
      assert.equal(info.dtype, { float32: 'F32', int64: 'I64' }[k.dtype], k.key);
    }
    // The two format-only criterion buffers (manifest checkpoint_summary.format_only_entries).
    assert.deepEqual(list.get('model_vision.criterion.0.fed_loss_cls_weights')?.shape, [12]);
    assert.equal(list.get('model_vision.criterion.0.fed_loss_cls_weights')?.dtype, 'F32');
    assert.deepEqual(list.get('model_vision.criterion.0.fed_loss_pad_classes')?.shape, [3]);
    assert.equal(list.get('model_vision.criterion.0.fed_loss_pad_classes')?.dtype, 'I64');
    // 206 tensor references over 193 storages: the model's 200 over 187 (13 aliases), the optimizer's 6 over 6.
    assert.equal(new Set([...list.values()].map((i) => i.storageKey)).size, 187);
  } finally {
    await ckpt.close();
  }
});

test('fixture: values match an independent reading (CPython pickle + struct) by sum and sum of squares', async () => {
  // Reference numbers from CPython: pickle.Unpickler with stand-in globals, storages unpacked with struct, math.fsum.
  const ref: Record<string, [number, number, number, number]> = {
    'model_vision.backbone.net.pos_embed': [640, -0.33430271688848734, 1.979920519125154, 0.09565498679876328],
    'model_vision.backbone.net.patch_embed.proj.weight': [
      49152, -1.5641840783937369, 143.4476611060791, 0.020751312375068665,
    ],
    'model_vision.model_language.net.text.token_embedding.weight': [
      1581056, 12.173327865944884, 4594.776721441789, 0.03724144771695137,
    ],
    'model_vision.class_embed.0.bias0': [1, -4.677114963531494, 21.87540438209021, -4.677114963531494],
    'model_vision.transformer.encoder.layers.0.attentions.0.sampling_offsets.bias': [
      96, 1.1233252284582704, 356.96216076121704, 1.0356122255325317,
    ],
    'model_vision.backbone.net.blocks.3.mlp.w3.weight': [
      10880, 3.689297877048375, 31.75844501294104, 0.008076624944806099,
    ],
  };
  const tensors = await readTorchCheckpoint(checkpointPath);
  for (const [key, [n, s, sq, first]] of Object.entries(ref)) {
    const t = tensors.get(key)!;
    assert.ok(t.data instanceof Float32Array, key);
    assert.equal(t.data.length, n, key);
    assert.equal(t.data[0], first, key);
    assert.ok(close(sum(t.data), s, 1e-9), `${key}: sum ${sum(t.data)} vs ${s}`);
    assert.ok(close(sumSq(t.data), sq, 1e-9), `${key}: sum of squares ${sumSq(t.data)} vs ${sq}`);
  }
  let total = 0;
  let totalSq = 0;
  for (const t of tensors.values()) {
    if (t.dtype !== 'F32') continue;
    total += sum(t.data as Float32Array);
    totalSq += sumSq(t.data as Float32Array);
  }
  assert.ok(close(total, 3091.9830415466367, 1e-9), `total ${total}`);
  assert.ok(close(totalSq, 14411.257973583111, 1e-9), `total of squares ${totalSq}`);
  assert.deepEqual(
    tensors.get('model_vision.criterion.0.fed_loss_pad_classes')?.data,
    BigInt64Array.from([9n, 10n, 11n]),
  );
  // A 0-d tensor.
  const scale = tensors.get('model_vision.model_language.net.logit_scale')!;
  assert.deepEqual(scale.shape, []);
  assert.equal(scale.data.length, 1);
});

test('fixture: shared storages give equal tensors (class_embed aliases, RoPE tables), which match their formula', async () => {
  const ckpt = await TorchCheckpoint.open(checkpointPath);
  try {
    for (const name of [
      'log_scale',
      'bias_lang',
      'bias0',
      'dot_product_projection_text.weight',
      'dot_product_projection_text.bias',
    ]) {
      const a = ckpt.info(`model_vision.class_embed.0.${name}`);
      const b = ckpt.info(`model_vision.transformer.decoder.class_embed.0.${name}`);
      assert.equal(a.storageKey, b.storageKey, name);
      assert.deepEqual((await ckpt.read(a.key)).data, (await ckpt.read(b.key)).data);
    }
    // rope_glb (global blocks, n = 4): freqs f_k = 10000^(-2k/8), t = arange(4) / 4 * 16; per token (h, w)
    // channels 0..7 use t[h] with f0,f0,f1,f1,.. and channels 8..15 use t[w].
    const cos = await ckpt.read('model_vision.backbone.net.rope_glb.freqs_cos');
    const sin = await ckpt.read('model_vision.backbone.net.blocks.1.attn.rope.freqs_sin');
    assert.equal(
      ckpt.info('model_vision.backbone.net.blocks.1.attn.rope.freqs_sin').storageKey,
      ckpt.info('model_vision.backbone.net.rope_glb.freqs_sin').storageKey,
    );
    assert.deepEqual(cos.shape, [16, 16]);
    for (let h = 0; h < 4; h++) {
      for (let w = 0; w < 4; w++) {
        for (let c = 0; c < 16; c++) {
          const f = 10000 ** (-(2 * Math.floor((c % 8) / 2)) / 8);
          const angle = (c < 8 ? h : w) * 4 * f;
          const at = (h * 4 + w) * 16 + c;
          assert.ok(Math.abs((cos.data as Float32Array)[at]! - Math.cos(angle)) < 1e-6, `cos ${h},${w},${c}`);
          assert.ok(Math.abs((sin.data as Float32Array)[at]! - Math.sin(angle)) < 1e-6, `sin ${h},${w},${c}`);
        }
      }
    }
  } finally {
    await ckpt.close();
  }
});

test('fixture: patch-embedding weights reproduce vit.patch_embed of cases.safetensors', async () => {
  const cases = readSafetensorsMinimal(join(fixtures, 'cases.safetensors'));
  const input = cases.get('vit.input')!; // [2, 3, 64, 64]
  const expected = cases.get('vit.patch_embed')!; // [2, 4, 4, 64] (B, H, W, C)
  const t = await readTorchCheckpoint(checkpointPath, {
    select: (k) => k.startsWith('model_vision.backbone.net.patch_embed.'),
  });
  assert.deepEqual([...t.keys()].sort(), [
    'model_vision.backbone.net.patch_embed.proj.bias',
    'model_vision.backbone.net.patch_embed.proj.weight',
  ]);
  const w = t.get('model_vision.backbone.net.patch_embed.proj.weight')!.data as Float32Array; // [64, 3, 16, 16]
  const b = t.get('model_vision.backbone.net.patch_embed.proj.bias')!.data as Float32Array;
  for (const [bi, i, j, c] of [
    [0, 0, 0, 0],
    [0, 1, 2, 5],
    [1, 3, 3, 63],
    [1, 2, 0, 31],
  ] as const) {
    let acc = b[c]!;
    for (let ci = 0; ci < 3; ci++) {
      for (let y = 0; y < 16; y++) {
        for (let x = 0; x < 16; x++) {
          acc += input[((bi * 3 + ci) * 64 + i * 16 + y) * 64 + j * 16 + x]! * w[((c * 3 + ci) * 16 + y) * 16 + x]!;
        }
      }
    }
    const want = expected[((bi * 4 + i) * 4 + j) * 64 + c]!;
    assert.ok(Math.abs(acc - want) < 1e-4, `patch_embed[${bi},${i},${j},${c}] = ${acc}, reference ${want}`);
  }
});

test('fixture: select reads only the chosen keys; root can be named; the optimizer root is readable on demand', async () => {
  const picked = await readTorchCheckpoint(checkpointPath, { select: (k) => k.endsWith('.bias0') });
  assert.deepEqual(
    [...picked.keys()],
    ['model_vision.transformer.decoder.class_embed.0.bias0', 'model_vision.class_embed.0.bias0'],
  );
  const opt = await listTorchCheckpoint(checkpointPath, { root: 'optimizer' });
  assert.deepEqual(
    [...opt.keys()],
    ['state.0.step', 'state.0.exp_avg', 'state.0.exp_avg_sq', 'state.1.step', 'state.1.exp_avg', 'state.1.exp_avg_sq'],
  );
  assert.deepEqual(opt.get('state.0.step')?.shape, []);
  await assert.rejects(
    listTorchCheckpoint(checkpointPath, { root: 'weights' }),
    /no 'weights' at the top level \(found: model, optimizer, scheduler, iteration\)/,
  );
});

/** Just enough of safetensors to read the F32 cases (independent of src/io). */
function readSafetensorsMinimal(path: string): Map<string, Float32Array> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; data_offsets: [number, number] }
  >;
  const out = new Map<string, Float32Array>();
  for (const [k, v] of Object.entries(header)) {
    if (k === '__metadata__' || v.dtype !== 'F32') continue;
    const bytes = buf.subarray(8 + n + v.data_offsets[0], 8 + n + v.data_offsets[1]);
    out.set(k, new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
  }
  return out;
}

// ------------------------------------------------------------------ crafted checkpoints

const f32 = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));

test('float16, bfloat16 and int64 storages (raw bits by default, float32 on request), 0-d tensors, Parameters', async () => {
  // 1, -2, 0.5, 65504 (max half), 2^-24 (smallest subnormal), -0, inf, 1/3 rounded to half.
  const halfBits = Uint16Array.from([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000, 0x7c00, 0x3555]);
  const halfValues = [1, -2, 0.5, 65504, 2 ** -24, -0, Infinity, 0.333251953125];
  // bfloat16 is the top half of a float32: 1, -2.5, 3.140625, 1e-38 rounded.
  const bf = Uint16Array.from([0x3f80, 0xc020, 0x4049, 0x006d]);
  const bfValues = [1, -2.5, 3.140625, new Float32Array(new Uint32Array([0x006d0000]).buffer)[0]!];
  const longs = BigInt64Array.from([-(2n ** 63n), -1n, 0n, 2n ** 53n + 1n, 2n ** 63n - 1n]);
  const pkl = checkpointPickle({
    half: { storage: '0', storageType: 'HalfStorage', numel: 8, shape: [2, 4] },
    bf16: { storage: '1', storageType: 'BFloat16Storage', numel: 4, shape: [4], parameter: true },
    long: { storage: '2', storageType: 'LongStorage', numel: 5, shape: [5] },
    scalar: { storage: '3', storageType: 'FloatStorage', numel: 1, shape: [] },
    ints: { storage: '4', storageType: 'IntStorage', numel: 2, shape: [2] },
    flags: { storage: '5', storageType: 'BoolStorage', numel: 3, shape: [3] },
    empty: { storage: '6', storageType: 'FloatStorage', numel: 0, shape: [0, 3] },
  });
  const path = file(
    torchArchive(pkl, {
      0: bytesOf(halfBits),
      1: bytesOf(bf),
      2: bytesOf(longs),
      3: bytesOf(Float32Array.from([42.5])),
      4: bytesOf(Int32Array.from([-7, 7])),
      5: Uint8Array.from([1, 0, 1]),
      6: new Uint8Array(0),
    }),
  );
  const list = await listTorchCheckpoint(path);
  assert.deepEqual(
    [...list.values()].map((i) => [i.key, i.dtype, i.shape]),
    [
      ['half', 'F16', [2, 4]],
      ['bf16', 'BF16', [4]],
      ['long', 'I64', [5]],
      ['scalar', 'F32', []],
      ['ints', 'I32', [2]],
      ['flags', 'BOOL', [3]],
      ['empty', 'F32', [0, 3]],
    ],
  );
  const raw = await readTorchCheckpoint(path);
  assert.deepEqual(raw.get('half')!.data, halfBits);
  assert.equal(raw.get('half')!.dtype, 'F16');
  assert.deepEqual(raw.get('bf16')!.data, bf);
  assert.deepEqual(raw.get('long')!.data, longs);
  assert.deepEqual(raw.get('scalar'), { dtype: 'F32', sourceDtype: 'F32', shape: [], data: Float32Array.from([42.5]) });
  assert.deepEqual(raw.get('ints')!.data, Int32Array.from([-7, 7]));
  assert.deepEqual(raw.get('flags')!.data, Uint8Array.from([1, 0, 1]));
  assert.deepEqual(raw.get('empty')!.data, new Float32Array(0));
  const up = await readTorchCheckpoint(path, { upcastHalf: true });
  assert.equal(up.get('half')!.dtype, 'F32');
  assert.equal(up.get('half')!.sourceDtype, 'F16');
  assert.deepEqual([...(up.get('half')!.data as Float32Array)], halfValues);
  assert.ok(Object.is((up.get('half')!.data as Float32Array)[5], -0));
  assert.deepEqual([...(up.get('bf16')!.data as Float32Array)], bfValues);
  // A half NaN stays NaN.
  const nanPath = file(
    torchArchive(checkpointPickle({ n: { storage: '0', storageType: 'HalfStorage', numel: 1, shape: [] } }), {
      0: bytesOf(Uint16Array.from([0x7e00])),
    }),
  );
  assert.ok(Number.isNaN((await readTorchCheckpoint(nanPath, { upcastHalf: true })).get('n')!.data[0]));
});

test('every binary16 pattern widens to the value it encodes', async () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const path = file(
    torchArchive(checkpointPickle({ h: { storage: '0', storageType: 'HalfStorage', numel: 65536, shape: [65536] } }), {
      0: bytesOf(all),
    }),
  );
  const out = (await readTorchCheckpoint(path, { upcastHalf: true })).get('h')!.data as Float32Array;
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 31;
    const m = h & 1023;
    const want =
      e === 0 ? sign * m * 2 ** -24 : e === 31 ? (m ? NaN : sign * Infinity) : sign * (1 + m / 1024) * 2 ** (e - 15);
    if (!Object.is(out[h], want)) assert.fail(`half 0x${h.toString(16)}: got ${out[h]}, want ${want}`);
  }
});

test('storages shared between keys, storage offsets, and non-contiguous views materialised row-major', async () => {
  const base = f32(24, (i) => i); // storage 0: 0..23
  const pkl = checkpointPickle({
    whole: { storage: '0', storageType: 'FloatStorage', numel: 24, shape: [2, 3, 4] },
    alias: { storage: '0', storageType: 'FloatStorage', numel: 24, shape: [4, 6] },
    slice: { storage: '0', storageType: 'FloatStorage', numel: 24, offset: 5, shape: [3], stride: [1] },
    // whole.transpose(0, 2): shape [4, 3, 2], strides [1, 4, 12]
    transposed: { storage: '0', storageType: 'FloatStorage', numel: 24, shape: [4, 3, 2], stride: [1, 4, 12] },
    // whole[:, 1, ::2] -> offset 4, shape [2, 2], strides [12, 2]
    strided: { storage: '0', storageType: 'FloatStorage', numel: 24, offset: 4, shape: [2, 2], stride: [12, 2] },
    // expand: a stride-0 broadcast of 3 values to [2, 3]
    expanded: { storage: '0', storageType: 'FloatStorage', numel: 24, offset: 20, shape: [2, 3], stride: [0, 1] },
    longT: { storage: '1', storageType: 'LongStorage', numel: 6, shape: [3, 2], stride: [1, 3] },
    halfT: { storage: '2', storageType: 'HalfStorage', numel: 4, shape: [2, 2], stride: [1, 2] },
  });
  const path = file(
    torchArchive(pkl, {
      0: bytesOf(base),
      1: bytesOf(BigInt64Array.from([0n, 1n, 2n, -3n, -4n, 2n ** 62n])),
      2: bytesOf(Uint16Array.from([0x3c00, 0x4000, 0x4200, 0x4400])),
    }),
  );
  const ckpt = await TorchCheckpoint.open(path);
  try {
    assert.equal(ckpt.info('whole').storageKey, ckpt.info('alias').storageKey);
    assert.equal(ckpt.info('whole').contiguous, true);
    assert.equal(ckpt.info('slice').contiguous, true);
    assert.equal(ckpt.info('transposed').contiguous, false);
    assert.deepEqual([...((await ckpt.read('whole')).data as Float32Array)], [...base]);
    assert.deepEqual([...((await ckpt.read('alias')).data as Float32Array)], [...base]);
    assert.deepEqual([...((await ckpt.read('slice')).data as Float32Array)], [5, 6, 7]);
    const t = (await ckpt.read('transposed')).data as Float32Array;
    const want: number[] = [];
    for (let k = 0; k < 4; k++) for (let j = 0; j < 3; j++) for (let i = 0; i < 2; i++) want.push(i * 12 + j * 4 + k);
    assert.deepEqual([...t], want);
    assert.deepEqual([...((await ckpt.read('strided')).data as Float32Array)], [4, 6, 16, 18]);
    assert.deepEqual([...((await ckpt.read('expanded')).data as Float32Array)], [20, 21, 22, 20, 21, 22]);
    assert.deepEqual((await ckpt.read('longT')).data, BigInt64Array.from([0n, -3n, 1n, -4n, 2n, 2n ** 62n]));
    assert.deepEqual((await ckpt.read('halfT')).data, Uint16Array.from([0x3c00, 0x4200, 0x4000, 0x4400]));
    assert.deepEqual([...((await ckpt.read('halfT', { upcastHalf: true })).data as Float32Array)], [1, 3, 2, 4]);
    // Reads hand out fresh arrays: writing one does not change another key sharing the storage.
    const a = (await ckpt.read('whole')).data as Float32Array;
    a[0] = 99;
    assert.equal(((await ckpt.read('alias')).data as Float32Array)[0], 0);
  } finally {
    await ckpt.close();
  }
});

test('optimizer tensors are never read: a corrupt optimizer storage does not matter unless asked for', async () => {
  const opt: TensorSpec = { storage: '9', storageType: 'FloatStorage', numel: 4, shape: [4] };
  const pkl = checkpointPickle({ w: { storage: '0', storageType: 'FloatStorage', numel: 2, shape: [2] } }, opt);
  const bytes = zipArchive([
    { name: 'archive/data.pkl', data: pkl },
    { name: 'archive/data/0', data: bytesOf(Float32Array.from([1, 2])) },
    { name: 'archive/data/9', data: bytesOf(Float32Array.from([1, 2, 3, 4])), crc: 0xdeadbeef },
  ]);
  const path = file(bytes);
  const model = await readTorchCheckpoint(path);
  assert.deepEqual([...model.keys()], ['w']);
  assert.deepEqual(model.get('w')!.data, Float32Array.from([1, 2]));
  const ckpt = await TorchCheckpoint.open(path);
  assert.deepEqual(ckpt.skipped, ['optimizer', 'iteration']);
  await ckpt.close();
  await assert.rejects(
    readTorchCheckpoint(path, { root: 'optimizer' }),
    /tensor 'state\.0\.exp_avg'.*entry 'archive\/data\/9' is corrupt/,
  );
});

test('refuses a checkpoint that reaches for a forbidden global, naming it, even deep inside the optimizer', async () => {
  const p = new PickleBytes().proto(2).emptyDict().mark();
  p.str('model').emptyDict().str('w');
  emitTensor(p, { storage: '0', storageType: 'FloatStorage', numel: 1, shape: [1] });
  p.setitem();
  p.str('optimizer')
    .emptyDict()
    .str('hook')
    .global('posix', 'system')
    .str('touch /tmp/pwned')
    .tupleN(1)
    .reduce()
    .setitem();
  p.setitems().stop();
  const path = file(torchArchive(p.bytes(), { 0: bytesOf(Float32Array.from([1])) }));
  await assert.rejects(
    readTorchCheckpoint(path),
    (err: Error) => err.message === `${path}: refused pickle global 'posix.system'`,
  );
  await assert.rejects(listTorchCheckpoint(path), /refused pickle global 'posix\.system'/);
  // A forbidden storage-like type.
  const q = new PickleBytes().proto(2).emptyDict().str('w');
  emitTensor(q, { storage: '0', storageType: 'ComplexFloatStorage', numel: 1, shape: [1] });
  const path2 = file(torchArchive(q.setitem().stop().bytes(), { 0: new Uint8Array(8) }));
  await assert.rejects(readTorchCheckpoint(path2), /refused pickle global 'torch\.ComplexFloatStorage'/);
});

test('lying files: nbytes that do not match the element count, views past the storage, missing records', async () => {
  const spec = (over: Partial<TensorSpec>): TensorSpec => ({
    storage: '0',
    storageType: 'FloatStorage',
    numel: 4,
    shape: [4],
    ...over,
  });
  const four = bytesOf(Float32Array.from([1, 2, 3, 4]));
  const cases: [Record<string, TensorSpec>, Record<string, Uint8Array>, RegExp][] = [
    [{ w: spec({ numel: 5 }) }, { 0: four }, /storage '0' is 5 x F32 \(20 bytes\) but its record data\/0 has 16 bytes/],
    [
      { w: spec({ storageType: 'DoubleStorage' }) },
      { 0: four },
      /storage '0' is 4 x F64 \(32 bytes\) but its record data\/0 has 16 bytes/,
    ],
    [
      { w: spec({ offset: 1 }) },
      { 0: four },
      /tensor of shape \[4\] strides \[1\] offset 1 reaches element 4 of storage '0', which has 4 elements/,
    ],
    [{ w: spec({ offset: 9, shape: [], stride: [] }) }, { 0: four }, /offset 9 reaches element 9 of storage '0'/],
    [{ w: spec({ shape: [2, 2], stride: [3, 1] }) }, { 0: four }, /reaches element 4 of storage '0'/],
    [{ w: spec({ shape: [2, 2], stride: [1] }) }, { 0: four }, /size has 2 dimensions but stride has 1/],
    [{ w: spec({}) }, {}, /storage '0' has no record data\/0 in the archive/],
    [
      { w: spec({}), v: spec({ numel: 2, shape: [2] }) },
      { 0: four },
      /storage '0' is referred to as 4 x F32 and as 2 x F32/,
    ],
  ];
  for (const [model, storages, message] of cases) {
    const path = file(torchArchive(checkpointPickle(model), storages));
    await assert.rejects(listTorchCheckpoint(path), message);
  }
  // A record whose directory size agrees with the pickle but whose bytes run past the end of the file.
  const good = torchArchive(checkpointPickle({ w: spec({}) }), { 0: four });
  const bytes = zipArchive([
    { name: 'archive/data.pkl', data: checkpointPickle({ w: spec({ numel: 1 << 20 }) }) },
    { name: 'archive/data/0', data: four, claimedSize: 4 << 20 },
  ]);
  await assert.rejects(
    listTorchCheckpoint(file(bytes)),
    /entry 'archive\/data\/0' \(4194304 bytes at offset \d+\) lies outside the archive's data area/,
  );
  // Truncated archives.
  for (const cut of [good.length - 10, good.length >> 1, 100]) {
    await assert.rejects(
      listTorchCheckpoint(file(good.subarray(0, cut))),
      /not a zip archive|points outside|truncated|lies outside/,
    );
  }
});

test('archive variants: another archive name, zip64 records, deflated entries, big-endian byteorder refused, legacy format named', async () => {
  const model = { w: { storage: '0', storageType: 'FloatStorage', numel: 3, shape: [3] } };
  const data = { 0: bytesOf(Float32Array.from([0.5, -1, 7])) };
  for (const options of [{ prefix: 'my_model' }, { zip64: true }, { deflate: true }]) {
    const t = await readTorchCheckpoint(file(torchArchive(checkpointPickle(model), data, options)));
    assert.deepEqual(t.get('w')!.data, Float32Array.from([0.5, -1, 7]), JSON.stringify(options));
  }
  const little = torchArchive(checkpointPickle(model), data, {
    extra: [{ name: 'archive/byteorder', data: new TextEncoder().encode('little') }],
  });
  assert.equal((await readTorchCheckpoint(file(little))).size, 1);
  const big = torchArchive(checkpointPickle(model), data, {
    extra: [{ name: 'archive/byteorder', data: new TextEncoder().encode('big') }],
  });
  await assert.rejects(readTorchCheckpoint(file(big)), /storages are big-endian; only little-endian is supported/);
  // torch < 1.6 wrote a bare pickle stream starting with a magic number.
  const legacy = new PickleBytes().proto(2).long1(0x1950a86a20f9469cfc6cn).stop().bytes();
  await assert.rejects(readTorchCheckpoint(file(legacy)), /legacy torch\.save format/);
  const noPickle = zipArchive([{ name: 'archive/constants.pkl', data: new Uint8Array(4) }]);
  await assert.rejects(
    readTorchCheckpoint(file(noPickle)),
    /no data\.pkl in the zip archive \(a TorchScript archive\?/,
  );
  // A bare state dict at the top level (no "model" wrapper), with a nested dict flattened by dots.
  const p = new PickleBytes().proto(2).emptyDict().str('enc').emptyDict().str('w');
  emitTensor(p, { storage: '0', storageType: 'FloatStorage', numel: 3, shape: [3] });
  p.setitem().setitem().str('note').str('not a tensor').setitem().stop();
  const bare = await readTorchCheckpoint(file(torchArchive(p.bytes(), data)));
  assert.deepEqual([...bare.keys()], ['enc.w']);
});

test('large float16 storages are widened chunk by chunk; the checksum still covers the whole record', async () => {
  const n = 4 * 1024 * 1024 + 3; // one element past the 4M-element chunk
  const bits = new Uint16Array(n);
  for (let i = 0; i < n; i++) bits[i] = 0x3c00 + (i % 1024); // 1 + (i % 1024) / 1024
  const pkl = checkpointPickle({
    h: { storage: '0', storageType: 'HalfStorage', numel: n, shape: [n] },
    tail: { storage: '0', storageType: 'HalfStorage', numel: n, offset: n - 2, shape: [2] },
  });
  const path = file(torchArchive(pkl, { 0: bytesOf(bits) }));
  const t = await readTorchCheckpoint(path, { upcastHalf: true });
  const h = t.get('h')!.data as Float32Array;
  assert.equal(h.length, n);
  for (const i of [0, 1, 1023, 1024, 4 * 1024 * 1024 - 1, 4 * 1024 * 1024, n - 1])
    assert.equal(h[i], 1 + (i % 1024) / 1024, `element ${i}`);
  assert.deepEqual(
    [...(t.get('tail')!.data as Float32Array)],
    [1 + ((n - 2) % 1024) / 1024, 1 + ((n - 1) % 1024) / 1024],
  );
  const bad = zipArchive([
    { name: 'archive/data.pkl', data: pkl },
    { name: 'archive/data/0', data: bytesOf(bits), crc: 0x01020304 },
  ]);
  await assert.rejects(
    readTorchCheckpoint(file(bad), { upcastHalf: true }),
    /tensor 'h': entry 'archive\/data\/0' is corrupt/,
  );
});
