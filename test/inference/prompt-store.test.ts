import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/engine.js';
import { loadModel } from '../../src/inference/model-files.js';
import { PromptFileStore, clearPromptStore, promptStoreRoot } from '../../src/inference/prompt-store.js';
import { repoRoot } from '../cli/ape-cli.js';

const work = mkdtempSync(join(tmpdir(), 'ape-prompt-store-'));
const modelDir = join(work, 'model');

before(async () => {
  await initEngine({ backend: 'wasm' });
  for (const file of ['config.json', 'model.safetensors', 'tokenizer.json'])
    cpSync(join(repoRoot, 'models/default', file), join(modelDir, file));
});
after(() => rmSync(work, { recursive: true, force: true }));

const KEY_A = 'a'.repeat(64);
const KEY_B = 'b'.repeat(64);
const vector = (seed: number, dim = 4) => Float32Array.from({ length: dim }, (_, i) => seed + i / 8);

test('a second model instance reads the vectors the first encoded, without encoding; the key follows the model files', async () => {
  const texts = ['circle', 'star', 'sky', 'the red star'];
  const warnings: string[] = [];
  const first = await loadModel(modelDir, { promptCache: { onWarning: (m) => warnings.push(m) } });
  const encoded = first.encodePrompts(texts).arraySync();
  assert.equal(first.promptCache.stats().encoded, 4);
  first.dispose();
  const keys = readdirSync(join(modelDir, 'prompt-cache'));
  assert.equal(keys.length, 1);
  assert.match(keys[0]!, /^[0-9a-f]{64}$/);

  const second = await loadModel(modelDir, { promptCache: { onWarning: (m) => warnings.push(m) } });
  assert.deepEqual(second.encodePrompts(texts).arraySync(), encoded);
  assert.deepEqual([second.promptCache.stats().encoded, second.promptCache.stats().stored], [0, 4]);
  // A new text is encoded (only it), and stored beside the others.
  second.encodePrompts(['circle', 'water']).dispose();
  assert.deepEqual([second.promptCache.stats().encoded, second.promptCache.stats().stored], [1, 4]);
  second.dispose();

  // Other model files (here the same weights with a changed config file): another key, nothing shared.
  const config = join(modelDir, 'config.json');
  const original = readFileSync(config);
  appendFileSync(config, '\n');
  try {
    const third = await loadModel(modelDir);
    third.encodePrompts(texts).dispose();
    assert.equal(third.promptCache.stats().encoded, 4);
    third.dispose();
    assert.equal(readdirSync(join(modelDir, 'prompt-cache')).length, 2);
  } finally {
    writeFileSync(config, original);
  }
  // Memory only: nothing read or written.
  const plain = await loadModel(modelDir, { promptCache: false });
  plain.encodePrompts(texts).dispose();
  assert.deepEqual([plain.promptCache.stats().encoded, plain.promptCache.stats().stored], [4, 0]);
  plain.dispose();
  assert.deepEqual(warnings, []);
});

test('store: vectors round-trip across instances; another key sees none; writers add shards side by side', () => {
  const root = join(work, 'roundtrip');
  const a = new PromptFileStore(root, KEY_A, 4);
  a.put(
    new Map([
      ['x', vector(1)],
      ['héllo wörld', vector(2)],
    ]),
  );
  const other = new PromptFileStore(root, KEY_A, 4);
  other.put(new Map([['y', vector(3)]]));
  const reader = new PromptFileStore(root, KEY_A, 4);
  assert.equal(reader.size, 3);
  const got = reader.get(['x', 'héllo wörld', 'y', 'missing']);
  assert.deepEqual([...got.keys()], ['x', 'héllo wörld', 'y']);
  assert.deepEqual(got.get('héllo wörld'), vector(2));
  assert.equal(new PromptFileStore(root, KEY_B, 4).size, 0);
  assert.throws(() => new PromptFileStore(root, 'abc', 4), /key must be 64 hex digits/);
  clearPromptStore(root, KEY_A);
  assert.equal(new PromptFileStore(root, KEY_A, 4).size, 0);
  assert.equal(promptStoreRoot(join(work, 'no-such-folder'), '/home-x'), join('/home-x', 'prompt-cache'));
  assert.equal(promptStoreRoot(work, '/home-x'), join(work, 'prompt-cache'));
});

test('store: damaged files are reported and left out, never thrown; a damaged row is encoded again', () => {
  const root = join(work, 'damage');
  const warnings: string[] = [];
  const onWarning = (m: string) => warnings.push(m);
  const writer = new PromptFileStore(root, KEY_A, 4, { onWarning });
  writer.put(
    new Map([
      ['good', vector(1)],
      ['bad row', vector(2)],
    ]),
  );
  const dir = join(root, KEY_A);
  const [shard] = readdirSync(dir);
  const path = join(dir, shard!);
  const bytes = readFileSync(path);
  // The last row's last byte flipped: its crc fails when read.
  const flipped = Buffer.from(bytes);
  flipped[flipped.length - 1]! ^= 0xff;
  writeFileSync(path, flipped);
  const reader = new PromptFileStore(root, KEY_A, 4, { onWarning });
  const got = reader.get(['good', 'bad row']);
  assert.deepEqual([...got.keys()], ['good']);
  assert.match(warnings.join('\n'), /a row fails its check/);

  // Truncated, garbage, another model's file, a damaged index: each reported, none kept.
  writeFileSync(join(dir, '000000000000001-1-trunc.apeprompts'), bytes.subarray(0, bytes.length - 3));
  writeFileSync(
    join(dir, '000000000000002-1-junk.apeprompts'),
    Buffer.from('not a cache file at all, but long enough to have a header of 64 bytes ...'),
  );
  const foreign = Buffer.from(bytes);
  Buffer.from(KEY_B, 'hex').copy(foreign, 32);
  writeFileSync(join(dir, '000000000000003-1-foreign.apeprompts'), foreign);
  const index = Buffer.from(bytes);
  index[64]! ^= 0x01;
  writeFileSync(join(dir, '000000000000004-1-index.apeprompts'), index);
  const huge = Buffer.from(bytes);
  huge.writeUInt32LE(0xffffffff, 16);
  writeFileSync(join(dir, '000000000000005-1-huge.apeprompts'), huge);
  warnings.length = 0;
  const again = new PromptFileStore(root, KEY_A, 4, { onWarning });
  assert.equal(again.size, 2); // the original shard's index is intact
  const text = warnings.join('\n');
  for (const pattern of [
    /trunc.*is \d+ bytes, its header describes/,
    /junk.*not a prompt cache file/,
    /foreign.*another model/,
    /index.*damaged index/,
    /huge.*its header describes/,
  ])
    assert.match(text, pattern);
  assert.equal(warnings.length, 5);
});

test('store: past the size cap the oldest shards go; the newest stays', () => {
  const root = join(work, 'cap');
  const store = new PromptFileStore(root, KEY_A, 256, { maxBytes: 3000 });
  for (let i = 0; i < 5; i++) store.put(new Map([[`text ${i}`, vector(i, 256)]]));
  // Each shard is 64 + 8 + 6 + 1024 bytes: two fit under 3000.
  assert.equal(readdirSync(join(root, KEY_A)).length, 2);
  assert.deepEqual(
    [...new PromptFileStore(root, KEY_A, 256).get(['text 0', 'text 3', 'text 4']).keys()],
    ['text 3', 'text 4'],
  );
  assert.deepEqual([...store.get(['text 0', 'text 4']).keys()], ['text 4']);
});
