import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  floatToBf16,
  floatToHalf,
  halfToFloat,
  readSafetensors,
  readSafetensorsHeader,
  toFloat32,
  writeSafetensors,
} from '../../src/io/safetensors.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../../src/io/safetensors-node.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fixtureDir = join(root, '../shared/fixtures/ape-reference');
const casesPath = join(fixtureDir, 'cases.safetensors');

interface CaseEntry {
  name: string;
  shape: number[];
  dtype: string;
}

test('reads the APE reference cases: every manifest entry with its shape and dtype', () => {
  const file = readSafetensors(new Uint8Array(readFileSync(casesPath)), 'cases.safetensors');
  assert.equal(file.tensors.size, 61);
  const manifest = JSON.parse(readFileSync(join(fixtureDir, 'manifest.json'), 'utf8')) as {
    modules: { cases: Record<string, CaseEntry[]> }[];
  };
  const listed = new Map<string, CaseEntry>();
  for (const m of manifest.modules)
    for (const group of Object.values(m.cases)) for (const c of group) listed.set(c.name, c);
  assert.equal(listed.size, 61);
  for (const [name, c] of listed) {
    const t = file.tensors.get(name);
    assert.ok(t, `missing ${name}`);
    assert.deepEqual(t.shape, c.shape, name);
    assert.equal(t.dtype, c.dtype, name);
    assert.equal(
      t.data.length,
      c.shape.reduce((a, b) => a * b, 1),
    );
    assert.ok(t.dtype === 'F32' ? t.data instanceof Float32Array : t.data instanceof BigInt64Array, name);
  }
  // Values checked against an independent numpy reading of the same file.
  const get = (name: string) => file.tensors.get(name)!.data;
  assert.deepEqual([...get('msda.spatial_shapes')], [8n, 8n, 4n, 4n, 2n, 2n]);
  assert.deepEqual([...get('msda.level_start_index')], [0n, 64n, 80n]);
  assert.deepEqual([...get('text.end_token_idx')], [2n, 3n, 10n, 11n, 5n, 76n]);
  assert.deepEqual([...get('text.input_ids').slice(0, 3)], [49406n, 2533n, 49407n]);
  assert.deepEqual(
    [...(get('align.logits') as Float32Array).slice(0, 3)],
    [-4.0240278244018555, -3.822021007537842, -4.425878524780273],
  );
  let sum = 0;
  for (const v of get('vit.input') as Float32Array) sum += v;
  assert.ok(Math.abs(sum - 113.19204818447906) < 1e-9, `sum ${sum}`);
  assert.equal(
    [...toFloat32(file.tensors.get('msda_enc.key_padding_mask')!)].reduce((a, b) => a + b, 0),
    41,
  );
  assert.equal(file.metadata.ape_commit, '8c4920e2014d4818ec3ecafb7b526d896a659d1c');
  assert.equal((JSON.parse(file.metadata['text.strings']!) as string[]).length, 6);
});

test('writer layout follows the reference: metadata first, data by descending dtype then name, header padded to 8', () => {
  const bytes = writeSafetensors(
    { b: { dtype: 'F32', shape: [2], data: Float32Array.from([1, 2]) }, a: { dtype: 'I64', shape: [1], data: [5] } },
    { x: 'y' },
  );
  const json =
    '{"__metadata__":{"x":"y"},"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}';
  const padded = Math.ceil(json.length / 8) * 8;
  assert.equal(new DataView(bytes.buffer).getUint32(0, true), padded);
  assert.equal(new DataView(bytes.buffer).getUint32(4, true), 0);
  assert.equal(new TextDecoder().decode(bytes.subarray(8, 8 + padded)), json.padEnd(padded, ' '));
  const data = bytes.subarray(8 + padded);
  assert.deepEqual([...data], [5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]);
  // Without metadata there is no __metadata__ key; dtype order beats name order.
  const plain = readSafetensorsHeader(
    writeSafetensors({
      z8: { dtype: 'U8', shape: [3], data: [1, 2, 3] },
      a16: { dtype: 'F16', shape: [1], data: [1] },
      m64: { dtype: 'F64', shape: [0], data: [] },
      b64: { dtype: 'F64', shape: [1], data: [1] },
    }),
  );
  assert.deepEqual(
    plain.tensors.map((t) => t.name),
    ['b64', 'm64', 'a16', 'z8'],
  );
  assert.deepEqual(plain.metadata, {});
});

test('round trip of the reference cases and of every dtype', () => {
  const original = readSafetensors(new Uint8Array(readFileSync(casesPath)));
  const again = readSafetensors(writeSafetensors(original.tensors, original.metadata));
  assert.deepEqual(again.metadata, original.metadata);
  assert.equal(again.tensors.size, 61);
  for (const [name, t] of original.tensors) assert.deepEqual(again.tensors.get(name), t, name);

  const all = readSafetensors(
    writeSafetensors({
      bool: { dtype: 'BOOL', shape: [3], data: [1, 0, 1] },
      u8: { dtype: 'U8', shape: [2], data: [0, 255] },
      i8: { dtype: 'I8', shape: [2], data: [-128, 127] },
      i16: { dtype: 'I16', shape: [2], data: [-32768, 32767] },
      u16: { dtype: 'U16', shape: [1], data: [65535] },
      i32: { dtype: 'I32', shape: [2], data: Int32Array.from([-(2 ** 31), 2 ** 31 - 1]) },
      u32: { dtype: 'U32', shape: [1], data: [2 ** 32 - 1] },
      f64: { dtype: 'F64', shape: [1, 1], data: [Math.PI] },
      i64: { dtype: 'I64', shape: [2], data: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n]) },
      u64: { dtype: 'U64', shape: [1], data: [2 ** 53] },
      scalar: { dtype: 'F32', shape: [], data: [0.5] },
    }),
  );
  const values = (name: string) => [...all.tensors.get(name)!.data];
  assert.deepEqual(values('bool'), [1, 0, 1]);
  assert.deepEqual(values('i8'), [-128, 127]);
  assert.deepEqual(values('i16'), [-32768, 32767]);
  assert.deepEqual(values('u16'), [65535]);
  assert.deepEqual(values('i32'), [-(2 ** 31), 2 ** 31 - 1]);
  assert.deepEqual(values('u32'), [2 ** 32 - 1]);
  assert.deepEqual(values('f64'), [Math.PI]);
  assert.deepEqual(values('i64'), [-(2n ** 63n), 2n ** 63n - 1n]);
  assert.deepEqual(values('u64'), [2n ** 53n]);
  assert.deepEqual(all.tensors.get('scalar')!.shape, []);
  assert.deepEqual(values('scalar'), [0.5]);
});

test('F16 and BF16: known bit patterns, round to nearest even, read back as Float32Array', () => {
  const halves: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [65520, 0x7c00], // rounds up to infinity
    [2 ** -24, 0x0001],
    [2 ** -25, 0x0000], // tie to even (zero)
    [3 * 2 ** -25, 0x0002], // tie to even (2)
    [0.1, 0x2e66],
    [-0, 0x8000],
    [Infinity, 0x7c00],
    [1 + 2 ** -11, 0x3c00], // tie: stays even
    [1 + 3 * 2 ** -11, 0x3c02], // tie: rounds up to even
  ];
  for (const [value, bits] of halves) assert.equal(floatToHalf(value), bits, `half(${value})`);
  assert.equal(halfToFloat(0x3555), 0.333251953125);
  assert.ok(Number.isNaN(halfToFloat(floatToHalf(NaN))));
  assert.equal(floatToBf16(1), 0x3f80);
  assert.equal(floatToBf16(0.1), 0x3dcd);
  assert.equal(floatToBf16(-3.140625), 0xc049);
  assert.ok(
    Number.isNaN(
      readSafetensors(writeSafetensors({ n: { dtype: 'BF16', shape: [1], data: [NaN] } })).tensors.get('n')!
        .data[0] as number,
    ),
  );

  const bytes = writeSafetensors({
    h: { dtype: 'F16', shape: [3], data: Float32Array.from([0.1, -2, 65504]) },
    b: { dtype: 'BF16', shape: [2], data: [0.1, 1] },
  });
  const file = readSafetensors(bytes);
  const h = file.tensors.get('h')!;
  assert.equal(h.dtype, 'F16');
  assert.ok(h.data instanceof Float32Array);
  assert.deepEqual([...h.data], [0.0999755859375, -2, 65504]);
  assert.deepEqual([...file.tensors.get('b')!.data], [0.10009765625, 1]);
  // BF16 ranks above F16 in the reference dtype order, so its 4 bytes come first; then 0x2e66, 0xc000, 0x7bff.
  const header = readSafetensorsHeader(bytes);
  assert.deepEqual(
    header.tensors.map((t) => t.name),
    ['b', 'h'],
  );
  assert.deepEqual(
    [...bytes.subarray(header.dataStart + 4, header.dataStart + 10)],
    [0x66, 0x2e, 0x00, 0xc0, 0xff, 0x7b],
  );
  // Writing a read file back gives identical bytes.
  assert.deepEqual(writeSafetensors(file.tensors), bytes);
});

/** A file with a hand-written header (padded) and `data` as its data section. */
function craft(header: unknown, data: Uint8Array = new Uint8Array(0), rawHeader?: Uint8Array): Uint8Array {
  const json = rawHeader ?? new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

test('bad files fail with errors naming the tensor and field', () => {
  const f32 = (shape: number[], offsets: unknown) => ({ dtype: 'F32', shape, data_offsets: offsets });
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(5), /bad\.st: file is 5 bytes; a safetensors file starts with an 8-byte header length/],
    [Uint8Array.from([0, 0, 0, 0, 1, 0, 0, 0]), /header length 4294967296 is larger than the limit of 100000000/],
    [Uint8Array.from([0x00, 0xe2, 0xf5, 0x05, 0, 0, 0, 0]), /header length 100000256 is larger than the limit/],
    [
      Uint8Array.from([200, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d]),
      /header length 200 runs past the end of the file \(10 bytes\)/,
    ],
    [craft(null, undefined, Uint8Array.from([0x7b, 0xff, 0x7d])), /header is not valid UTF-8/],
    [craft('[1,2]'), /must be a JSON object starting with '\{', found "\[1,2\]"/],
    [craft('{"a": '), /header is not valid JSON/],
    [
      craft({ t: { dtype: 'F17', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /tensor 't': dtype "F17" is unknown/,
    ],
    [
      craft({ t: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
      /tensor 't': dtype "F8_E4M3" is not supported/,
    ],
    [
      craft({ t: f32([-1], [0, 4]) }, new Uint8Array(4)),
      /tensor 't': shape\[0\] must be a non-negative integer, got -1/,
    ],
    [
      craft({ t: f32([1.5], [0, 4]) }, new Uint8Array(4)),
      /tensor 't': shape\[0\] must be a non-negative integer, got 1\.5/,
    ],
    [craft({ t: { dtype: 'F32', data_offsets: [0, 4] } }, new Uint8Array(4)), /tensor 't': shape must be an array/],
    [craft({ t: f32([1], [0]) }, new Uint8Array(4)), /tensor 't': data_offsets must be \[begin, end\], got \[0\]/],
    [craft({ t: f32([1], [4, 0]) }, new Uint8Array(4)), /tensor 't': data_offsets \[4, 0\] end before they begin/],
    [
      craft({ t: f32([2, 3], [0, 20]) }, new Uint8Array(20)),
      /tensor 't': shape \[2, 3\] of F32 needs 24 bytes but data_offsets \[0, 20\] hold 20/,
    ],
    [
      craft({ a: f32([2], [0, 8]), b: f32([2], [4, 12]) }, new Uint8Array(12)),
      /tensor 'b': data_offsets \[4, 12\] overlaps the previous tensor \(expected begin 8\)/,
    ],
    [
      craft({ a: f32([1], [0, 4]), b: f32([1], [8, 12]) }, new Uint8Array(12)),
      /tensor 'b': data_offsets \[8, 12\] leaves a gap/,
    ],
    [
      craft({ a: f32([1], [4, 8]) }, new Uint8Array(8)),
      /tensor 'a': data_offsets \[4, 8\] leaves a gap after the previous tensor \(expected begin 0\)/,
    ],
    [
      craft({ a: f32([4], [0, 16]) }, new Uint8Array(8)),
      /tensor 'a': data_offsets \[0, 16\] run past the data section \(8 bytes\)/,
    ],
    [craft({ a: f32([1], [0, 4]) }, new Uint8Array(12)), /data section is 12 bytes but the tensors account for 4/],
    [craft({ __metadata__: { k: 3 } }), /__metadata__\.k must be a string, got number/],
    [craft({ t: [1] }), /tensor 't': entry must be an object/],
  ];
  for (const [bytes, pattern] of cases) assert.throws(() => readSafetensors(bytes, 'bad.st'), pattern);
});

test('writer refuses inconsistent tensors', () => {
  assert.throws(
    () => writeSafetensors({ t: { dtype: 'F32', shape: [2, 2], data: [1, 2, 3] } }),
    /tensor 't': shape \[2, 2\] has 4 elements but data has 3/,
  );
  assert.throws(
    () => writeSafetensors({ t: { dtype: 'I32', shape: [1], data: [1.5] } }),
    /tensor 't': I32 value at index 0 is not an integer \(1\.5\)/,
  );
  assert.throws(
    () => writeSafetensors({ t: { dtype: 'U8', shape: [2], data: [1, 256] } }),
    /tensor 't': value 256 at index 1 is out of range for U8/,
  );
  assert.throws(
    () => writeSafetensors({ t: { dtype: 'BOOL', shape: [1], data: Uint8Array.from([2]) } }),
    /out of range for BOOL/,
  );
  assert.throws(
    () => writeSafetensors({ __metadata__: { dtype: 'F32', shape: [0], data: [] } }),
    /invalid tensor name "__metadata__"/,
  );
  assert.throws(() => writeSafetensors({ t: { dtype: 'F8' as 'F32', shape: [0], data: [] } }), /unknown dtype "F8"/);
});

test('Node files: atomic write, header-first partial read, same result as the in-memory reader', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ape-st-'));
  try {
    const path = join(dir, 'w.safetensors');
    await writeSafetensorsFile(
      path,
      { w: { dtype: 'F32', shape: [2, 2], data: [1, 2, 3, 4] }, ids: { dtype: 'I64', shape: [2], data: [7, 8] } },
      { note: 'n' },
    );
    const partial = await readSafetensorsFile(path, { filter: (name) => name === 'w' });
    assert.deepEqual([...partial.tensors.keys()], ['w']);
    assert.deepEqual([...partial.tensors.get('w')!.data], [1, 2, 3, 4]);
    assert.deepEqual(partial.metadata, { note: 'n' });

    const fromFile = await readSafetensorsFile(casesPath);
    const fromBytes = readSafetensors(new Uint8Array(readFileSync(casesPath)));
    assert.deepEqual(fromFile, fromBytes);

    const cut = join(dir, 'cut.safetensors');
    await writeFile(cut, readFileSync(casesPath).subarray(0, 500_000));
    await assert.rejects(readSafetensorsFile(cut), /cut\.safetensors: .*run past the data section/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a Node Buffer (a view into a shared pool) reads like a plain Uint8Array', () => {
  const plain = readSafetensors(new Uint8Array(readFileSync(casesPath)));
  const buffer = readSafetensors(readFileSync(casesPath));
  for (const [name, t] of plain.tensors) {
    assert.deepEqual(buffer.tensors.get(name)!.data, t.data, name);
  }
});
