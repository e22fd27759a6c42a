import { test, before, after, mock } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf, initEngine } from '../../src/engine/engine.js';
import { command, presetParameterShapes } from '../../src/cli/convert.js';
import { UsageError } from '../../src/cli/command.js';
import { readSafetensorsFile } from '../../src/io/safetensors-node.js';
import { ApeNetwork } from '../../src/modeling/ape-network.js';
import { APE_PRESETS, tinyConfig } from '../../src/modeling/config.js';
import { WordTokenizer } from '../../src/text/word-tokenizer.js';
import { loadModel } from '../../src/inference/model-files.js';
import { writeTinyTorchCheckpoint } from '../io/tiny-torch-export.js';

const dir = mkdtempSync(join(tmpdir(), 'ape-convert-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
before(async () => {
  await initEngine({ backend: 'cpu' });
});

function tinyTorchCheckpoint(
  params: Map<string, tf.Variable>,
  drop: string[] = [],
): { path: string; expected: Map<string, Float32Array> } {
  const path = join(dir, `tiny-${drop.length}.pth`);
  return { path, expected: writeTinyTorchCheckpoint(path, params, drop) };
}

async function runConvert(argv: string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const log = mock.method(console, 'log', (...args: unknown[]) => void lines.push(args.join(' ')));
  try {
    return { code: await command.run(argv), lines };
  } finally {
    log.mock.restore();
  }
}

test('presets describe themselves without allocating: names and shapes equal a real build of the tiny model; APE-D in full', () => {
  const before = tf.memory().numTensors;
  const described = presetParameterShapes(tinyConfig());
  assert.equal(tf.memory().numTensors, before);
  const real = new ApeNetwork(tinyConfig(), WordTokenizer.hashing(4096, 16), 3);
  const params = real.namedParameters();
  assert.deepEqual([...described.keys()], [...params.keys()]);
  for (const [name, v] of params) assert.deepEqual(described.get(name), v.shape, name);
  real.dispose();
  const apeD = presetParameterShapes(APE_PRESETS['ape-d']());
  assert.equal(tf.memory().numTensors, before);
  assert.deepEqual(apeD.get('backbone.net.blocks.23.mlp.w3.weight'), [2730, 1024]);
  assert.deepEqual(apeD.get('model_language.net.text.token_embedding.weight'), [49408, 1280]);
  assert.deepEqual(apeD.get('model_language.net.text.transformer.resblocks.31.attn.in_proj_weight'), [1280, 3840]);
  let count = 0;
  for (const s of apeD.values()) count += s.reduce((a, b) => a * b, 1);
  assert.ok(count > 1e9, `APE-D has ${count} parameters`);
});

test('ape convert: a torch export of the tiny model round-trips exactly (float16 text tower widened), with used/unused/missing printed', async () => {
  const net = new ApeNetwork(tinyConfig(), WordTokenizer.hashing(4096, 16), 11);
  const params = net.namedParameters();
  const { path, expected } = tinyTorchCheckpoint(params);
  const out = join(dir, 'out');
  const { code, lines } = await runConvert([path, '--preset', 'tiny', '--out', out]);
  assert.equal(code, 0);
  const groups = new Map<string, number>();
  for (const name of params.keys()) groups.set(name.split('.')[0]!, (groups.get(name.split('.')[0]!) ?? 0) + 1);
  assert.equal(
    lines[0],
    `used ${params.size} checkpoint tensor(s) -> ${params.size} parameter(s): ${[...groups].map(([g, c]) => `${g} ${c}`).join(', ')}`,
  );
  const unusedAt = lines.findIndex((l) => l.startsWith('unused '));
  const aliases = [...params.keys()].filter(
    (k) => k.startsWith('class_embed.') && !k.startsWith('class_embed.6.'),
  ).length;
  assert.equal(lines[unusedAt], `unused ${aliases + 2} checkpoint key(s):`);
  const unused = lines.slice(unusedAt + 1, unusedAt + 1 + aliases + 2).map((l) => l.trim());
  assert.ok(unused.includes('model_vision.transformer.decoder.class_embed.0.bias0'));
  assert.ok(unused.includes('model_vision.backbone.net.rope_win.freqs_cos'));
  assert.ok(unused.includes('model_vision.criterion.0.fed_loss_pad_classes'));
  assert.ok(lines.includes('missing 0 model parameter(s)'));
  assert.ok(lines.includes('skipped top-level entries: optimizer, iteration'));

  const file = await readSafetensorsFile(join(out, 'model.safetensors'));
  assert.equal(file.tensors.size, params.size);
  assert.equal(file.metadata.config, 'tiny');
  assert.equal(file.metadata.source, 'tiny-0.pth');
  for (const [name, v] of params) {
    const t = file.tensors.get(name)!;
    assert.deepEqual(t.shape, v.shape, name);
    assert.equal(t.dtype, 'F32');
    assert.deepEqual(t.data, expected.get(name), name);
  }
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')), {
    format: 'ape-model',
    version: 1,
    config: JSON.parse(JSON.stringify(tinyConfig())),
  });
  const conversion = JSON.parse(readFileSync(join(out, 'conversion.json'), 'utf8')) as {
    used: unknown[];
    missing: unknown[];
  };
  assert.equal(conversion.used.length, params.size);
  assert.ok(lines.some((l) => l.startsWith("note: the 'tiny' preset's word tokenizer is not in a torch checkpoint")));

  // The folder is what loadModel reads (the word tokenizer's vocabulary added, as the note says).
  writeFileSync(join(out, 'tokenizer.json'), JSON.stringify(WordTokenizer.hashing(4096, 16).toJSON()));
  const loaded = await loadModel(out);
  for (const [name, v] of loaded.namedParameters()) assert.deepEqual(v.dataSync(), expected.get(name), name);
  loaded.dispose();
  net.dispose();
});

test('ape convert: missing parameters are listed and stop the conversion unless --allow-missing', async () => {
  const net = new ApeNetwork(tinyConfig(), WordTokenizer.hashing(4096, 16), 12);
  const params = net.namedParameters();
  const drop = ['transformer.level_embeds', 'model_language.net.text.ln_final.bias'];
  const { path } = tinyTorchCheckpoint(params, drop);
  net.dispose();
  const out = join(dir, 'partial');
  const lines: string[] = [];
  const log = mock.method(console, 'log', (...args: unknown[]) => void lines.push(args.join(' ')));
  try {
    await assert.rejects(
      command.run([path, '--preset', 'tiny', '--out', out]),
      /2 parameter\(s\) of the model are not in the checkpoint: transformer\.level_embeds, model_language\.net\.text\.ln_final\.bias \(--allow-missing writes the rest\)/,
    );
  } finally {
    log.mock.restore();
  }
  assert.ok(lines.includes('missing 2 model parameter(s):'));
  assert.ok(lines.includes('  transformer.level_embeds'));
  assert.equal(existsSync(join(out, 'model.safetensors')), false);
  const { code, lines: again } = await runConvert([
    path,
    '--preset',
    'tiny',
    '--out',
    out,
    '--allow-missing',
    '--list-used',
  ]);
  assert.equal(code, 0);
  assert.ok(
    again.some((l) =>
      /^ {2}model_vision\.backbone\.net\.patch_embed\.proj\.weight -> backbone\.net\.patch_embed\.proj\.weight \[16, 16, 3, 192\] conv$/.test(
        l,
      ),
    ),
  );
  assert.ok(
    again.some((l) => /model_language\.net\.text\.token_embedding\.weight \[4096, 128\] asIs from F16$/.test(l)),
  );
  assert.equal((await readSafetensorsFile(join(out, 'model.safetensors'))).tensors.size, params.size - 2);
});

test('ape convert: usage errors and a checkpoint that does not fit the preset', async () => {
  await assert.rejects(
    command.run([]),
    (e: unknown) => e instanceof UsageError && /expected one checkpoint path, got 0/.test(e.message),
  );
  await assert.rejects(command.run(['x.pth', '--out', dir]), /--preset must be one of tiny, ape-ti, ape-d/);
  await assert.rejects(command.run(['x.pth', '--preset', 'ape-xl', '--out', dir]), /got 'ape-xl'/);
  await assert.rejects(command.run(['x.pth', '--preset', 'tiny']), /--out is required/);
  await assert.rejects(command.run(['x.pth', '--preset', 'tiny', '--out', dir, '--bogus']), UsageError);
  // The reference fixture is APE-D-shaped but tiny in width: every mismatch is named before anything is written.
  const fixture = new URL('../../../shared/fixtures/ape-reference/checkpoint.pth', import.meta.url);
  const lines: string[] = [];
  const log = mock.method(console, 'log', (...args: unknown[]) => void lines.push(args.join(' ')));
  try {
    await assert.rejects(
      command.run([fixture.pathname, '--preset', 'ape-d', '--out', join(dir, 'never')]),
      /problem\(s\):\n {2}model_vision\.name_prompt_fusion_feature \[1, 1, 48\] \(asIs → \[1, 1, 48\]\) does not fit parameter 'name_prompt_fusion_feature' \[1, 1, 1024\]/,
    );
  } finally {
    log.mock.restore();
  }
  assert.equal(existsSync(join(dir, 'never')), false);
});
