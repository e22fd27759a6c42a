import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PickleDict,
  PickleError,
  PickleRefusedError,
  unpickle,
  type PickleGlobal,
  type PickleHooks,
} from '../../src/io/torch/pickle.js';
import { torchPickleHooks } from '../../src/io/torch/torch-globals.js';
import { PickleBytes } from './torch-test-writer.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));

/** Hooks that allow nothing: any global is refused, as a parser of untrusted data must. */
const noGlobals: PickleHooks = {
  findGlobal(module, name) {
    throw new PickleRefusedError(`${module}.${name}`);
  },
};

/** The torch allow-list, with every storage record 'present' at the size its pid claims. */
const torchHooks = () => torchPickleHooks({ storageBytes: () => undefined });

test('decodes a protocol-2 pickle written by CPython (ints of every width, floats, unicode, tuples, bools, None)', () => {
  // pickle.dumps({'a': [1, -2, 300, 70000, -70000, 2**70, -2**63, 1.5, 'é€', (1,2), (), (1,2,3,4), True, False, None]}, protocol=2)
  const v = unpickle(
    hex(
      '80027d710058010000006171015d7102284b014afeffffff4d2c014a701101004a90eefeff8a090000000000000000408a080000000000000080473ff80000000000005805000000c3a9e282ac71034b014b0286710429284b014b024b034b0474710588894e65732e',
    ),
    noGlobals,
  );
  assert.ok(v instanceof PickleDict);
  const list = v.get('a') as unknown[];
  assert.deepEqual(list, [
    1,
    -2,
    300,
    70000,
    -70000,
    2n ** 70n,
    -(2n ** 63n),
    1.5,
    'é€',
    [1, 2],
    [],
    [1, 2, 3, 4],
    true,
    false,
    null,
  ]);
  // Tuples are frozen arrays, lists are not.
  assert.ok(Object.isFrozen(list[9]));
  assert.ok(!Object.isFrozen(list));
});

test('decodes protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL, bytes, sets, shared references, LONG1, negative floats)', () => {
  // x=[1,2]; pickle.dumps({'b': b'xy', 'self': [x, x], 's': {1, 2}, 'f': frozenset([3]), 'big': -(2**64)+5, 'neg': -1.25e-300}, protocol=4)
  const v = unpickle(
    hex(
      '80049558000000000000007d94288c01629443027879948c0473656c66945d94285d94284b014b02656805658c0173948f94284b014b02908c016694284b0391948c03626967948a090500000000000000ff8c036e6567944781aac9a7b3b7302f752e',
    ),
    noGlobals,
  ) as PickleDict;
  assert.deepEqual(v.get('b'), Uint8Array.from([0x78, 0x79]));
  const self = v.get('self') as unknown[][];
  assert.deepEqual(self, [
    [1, 2],
    [1, 2],
  ]);
  assert.equal(self[0], self[1], 'the memo gives back the same object');
  assert.deepEqual(v.get('s'), new Set([1, 2]));
  assert.deepEqual(v.get('f'), new Set([3]));
  assert.equal(v.get('big'), -(2n ** 64n) + 5n);
  assert.equal(v.get('neg'), -1.25e-300);
});

test('collections.OrderedDict through STACK_GLOBAL + REDUCE + SETITEMS (CPython protocol 4)', () => {
  // pickle.dumps(OrderedDict([('x', 1), ('y', [2, 3])]), protocol=4)
  const v = unpickle(
    hex(
      '80049536000000000000008c0b636f6c6c656374696f6e73948c0b4f72646572656444696374949394295294288c0178944b018c0179945d94284b024b0365752e',
    ),
    torchHooks(),
  );
  assert.ok(v instanceof PickleDict);
  assert.deepEqual(
    [...v.entries()],
    [
      ['x', 1],
      ['y', [2, 3]],
    ],
  );
});

test('OrderedDict by NEWOBJ and with a list of pairs; BUILD keeps the attribute dict', () => {
  const p = new PickleBytes().proto(2).global('collections', 'OrderedDict').emptyTuple().newobj();
  p.emptyDict().str('_metadata').int(5).setitem().build().stop();
  const v = unpickle(p.bytes(), torchHooks()) as PickleDict;
  assert.equal(v.size, 0);
  assert.deepEqual([...(v.attributes as Map<unknown, unknown>)], [['_metadata', 5]]);

  const q = new PickleBytes().proto(2).global('collections', 'OrderedDict');
  q.emptyList().str('k').int(3).tupleN(2).append().tupleN(1).reduce().stop();
  assert.deepEqual([...(unpickle(q.bytes(), torchHooks()) as PickleDict)], [['k', 3]]);
});

test('refuses os.system / posix.system written by CPython, naming the global, before calling anything', () => {
  // class E: __reduce__ = lambda self: (os.system, ('echo pwned',)); pickle.dumps(E(), protocol=2)
  const evil = hex('800263706f7369780a73797374656d0a7100580a0000006563686f2070776e656471018571025271032e');
  assert.throws(
    () => unpickle(evil, torchHooks()),
    (err: unknown) => {
      assert.ok(err instanceof PickleRefusedError);
      assert.equal(err.message, "refused pickle global 'posix.system'");
      assert.equal(err.global, 'posix.system');
      return true;
    },
  );
  const os = new PickleBytes().proto(2).global('os', 'system').str('rm -rf /').tupleN(1).reduce().stop();
  assert.throws(() => unpickle(os.bytes(), torchHooks()), /refused pickle global 'os\.system'/);
});

test('refuses builtins.eval (STACK_GLOBAL), subprocess.Popen, and other near-misses of the allow-list', () => {
  // pickle.dumps(E(), protocol=4) with __reduce__ = (eval, ('1+1',))
  const evalPickle = hex('8004951f000000000000008c086275696c74696e73948c046576616c9493948c03312b3194859452942e');
  assert.throws(() => unpickle(evalPickle, torchHooks()), /refused pickle global 'builtins\.eval'/);
  // (subprocess.Popen, (['ls'],)), protocol 4
  const popen = hex('80049524000000000000008c0a73756270726f63657373948c05506f70656e9493945d948c026c739461859452942e');
  assert.throws(() => unpickle(popen, torchHooks()), /refused pickle global 'subprocess\.Popen'/);
  // bytes under protocol 2 go through _codecs.encode, which is not on the list either.
  assert.throws(
    () =>
      unpickle(
        hex('8002635f636f646563730a656e636f64650a710058020000007879710158060000006c6174696e3171028671035271042e'),
        torchHooks(),
      ),
    /refused pickle global '_codecs\.encode'/,
  );
  for (const [m, n] of [
    ['torch', 'load'],
    ['torch._utils', '_rebuild_device_tensor_from_numpy'],
    ['torch.storage', '_load_from_bytes'],
    ['collections', 'defaultdict'],
    ['builtins', 'getattr'],
    ['__builtin__', 'eval'],
    ['numpy.core.multiarray', '_reconstruct'],
  ]) {
    const p = new PickleBytes().proto(2).global(m!, n!).stop();
    assert.throws(
      () => unpickle(p.bytes(), torchHooks()),
      new RegExp(`refused pickle global '${(`${m}.${n}`).replace(/\./g, '\\.')}'`),
    );
  }
});

test('REDUCE / NEWOBJ only apply allow-listed globals, never plain values', () => {
  const p = new PickleBytes().proto(2).str('os.system').emptyTuple().reduce().stop();
  assert.throws(() => unpickle(p.bytes(), torchHooks()), /REDUCE of a value that is not an allowed global/);
  const q = new PickleBytes().proto(2).global('torch._utils', '_rebuild_tensor_v2').emptyTuple().newobj().stop();
  assert.throws(() => unpickle(q.bytes(), torchHooks()), /cannot be instantiated by NEWOBJ/);
  // A storage class is a persistent-id tag, not something to call.
  const r = new PickleBytes().proto(2).global('torch', 'FloatStorage').emptyTuple().reduce().stop();
  assert.throws(() => unpickle(r.bytes(), torchHooks()), /'torch\.FloatStorage' cannot be called/);
  // BUILD on anything but a dict is refused.
  const s = new PickleBytes().proto(2).emptyList().emptyDict().build().stop();
  assert.throws(() => unpickle(s.bytes(), torchHooks()), /BUILD on list of 0/);
});

test('refuses INST, OBJ and EXT opcodes, and persistent ids without a loader', () => {
  assert.throws(
    () => unpickle(Uint8Array.from([0x80, 2, 0x69, ...Buffer.from('os\nsystem\n'), 0x2e]), torchHooks()),
    /unsupported pickle opcode INST \(0x69\)/,
  );
  assert.throws(() => unpickle(Uint8Array.from([0x80, 2, 0x28, 0x6f, 0x2e]), torchHooks()), /OBJ \(0x6f\)/);
  assert.throws(() => unpickle(Uint8Array.from([0x80, 2, 0x82, 1, 0x2e]), torchHooks()), /EXT1/);
  assert.throws(
    () => unpickle(new PickleBytes().proto(2).str('x').binpersid().stop().bytes(), noGlobals),
    /persistent ids are not allowed/,
  );
});

test('malformed streams: truncation, stack underflow, bad memo, unhashable keys, leftovers', () => {
  const ok = new PickleBytes().proto(2).emptyDict().str('a').int(1).setitem().stop().bytes();
  for (let cut = 1; cut < ok.length; cut++) {
    assert.throws(() => unpickle(ok.subarray(0, cut), noGlobals), PickleError, `cut at ${cut}`);
  }
  assert.throws(() => unpickle(Uint8Array.from([0x80, 2, 0x73, 0x2e]), noGlobals), /stack underflow/);
  assert.throws(() => unpickle(Uint8Array.from([0x80, 2, 0x68, 9, 0x2e]), noGlobals), /memo entry 9 is not defined/);
  assert.throws(
    () => unpickle(new PickleBytes().proto(2).emptyDict().emptyList().int(1).setitem().stop().bytes(), noGlobals),
    /unhashable/,
  );
  assert.throws(
    () => unpickle(new PickleBytes().proto(2).int(1).int(2).stop().bytes(), noGlobals),
    /STOP with 2 values/,
  );
  assert.throws(
    () => unpickle(new PickleBytes().proto(2).int(1).tupleN(1).int(2).append().stop().bytes(), noGlobals),
    /APPEND\(S\) on a value that is not a list \(tuple of 1\)/,
  );
  assert.throws(() => unpickle(Uint8Array.from([0x80, 9, 0x2e]), noGlobals), /unsupported pickle protocol 9/);
  // A string that claims more bytes than there are.
  assert.throws(
    () => unpickle(Uint8Array.from([0x80, 2, 0x58, 0x00, 0x10, 0x00, 0x00, 0x61, 0x2e]), noGlobals),
    /truncated/,
  );
});

test('allocation bounds: memo size, stack size, MARK depth, string length', () => {
  const memo = new PickleBytes().proto(2).none();
  for (let i = 0; i < 20; i++) memo.longBinput(i * 1000);
  assert.throws(() => unpickle(memo.stop().bytes(), noGlobals, { maxMemo: 10 }), /more than 10 memo entries/);
  // A huge memo index is fine by itself (a Map, not an array sized by the index).
  assert.equal(
    unpickle(
      new PickleBytes().proto(2).int(4).longBinput(0xfffffff0).pop().longBinget(0xfffffff0).stop().bytes(),
      noGlobals,
    ),
    4,
  );

  const stack = new PickleBytes().proto(2).mark();
  for (let i = 0; i < 50; i++) stack.none();
  assert.throws(
    () => unpickle(stack.tuple().stop().bytes(), noGlobals, { maxStack: 20 }),
    /more than 20 values on the stack/,
  );

  const deep = new PickleBytes().proto(2);
  for (let i = 0; i < 30; i++) deep.mark();
  assert.throws(() => unpickle(deep.bytes(), noGlobals, { maxMarkDepth: 16 }), /MARK nesting deeper than 16/);

  const long = new PickleBytes().proto(2).binunicode('x'.repeat(100)).stop().bytes();
  assert.throws(
    () => unpickle(long, noGlobals, { maxStringBytes: 64 }),
    /string of 100 bytes is longer than the 64 allowed/,
  );
  assert.equal(unpickle(long, noGlobals, { maxStringBytes: 100 }), 'x'.repeat(100));
});

// The probe's pickle: one value memoized 2^24 times ran 18 s and 910 MB before the old limit
// (2^24 entries) refused it. The default now refuses past 2^20 entries.
test('a stream of MEMOIZE ops is refused at the default memo bound', () => {
  const head = new PickleBytes().proto(4).binunicode('x').bytes();
  const bytes = new Uint8Array(head.length + (1 << 20) + 2).fill(0x94); // MEMOIZE
  bytes.set(head);
  bytes[bytes.length - 1] = 0x2e; // STOP
  assert.throws(() => unpickle(bytes, noGlobals), /more than 1048576 memo entries/);
});

test('a global from a caller-supplied allow-list is applied with the popped arguments', () => {
  const seen: unknown[] = [];
  const pair: PickleGlobal = {
    qualifiedName: 'm.pair',
    call: (args) => {
      seen.push(args);
      return { pair: [...args] };
    },
  };
  const hooks: PickleHooks = { findGlobal: (m, n) => (m === 'm' && n === 'pair' ? pair : noGlobals.findGlobal(m, n)) };
  const p = new PickleBytes().proto(2).global('m', 'pair').int(1).str('b').tupleN(2).reduce().stop();
  assert.deepEqual(unpickle(p.bytes(), hooks), { pair: [1, 'b'] });
  assert.equal(seen.length, 1);
});
