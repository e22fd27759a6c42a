import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { closestName, editDistance } from '../../src/cli/did-you-mean.js';
import { ape } from './ape-cli.js';

test('did you mean: edit distance by hand, the closest name within reach, prefixes', () => {
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(closestName('treshold', ['threshold', 'semantic-threshold', 'out']), 'threshold');
  assert.equal(closestName('semantic', ['threshold', 'semantic-threshold']), 'semantic-threshold');
  assert.equal(closestName('zzzz', ['threshold', 'out']), undefined);
  assert.equal(closestName('ot', ['out', 'overwrite']), 'out');
});

test('ape --version, and unknown commands and options answered with the usage and a guess', () => {
  const version = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version as string;
  const v = ape(['--version']);
  assert.equal(v.code, 0);
  assert.equal(v.stdout, `ape ${version}\n`);
  const cmd = ape(['predcit']);
  assert.equal(cmd.code, 2);
  assert.match(cmd.stderr, /^ape: unknown command 'predcit' \(did you mean 'predict'\?\)\n\nusage: ape <command>/);
  const opt = ape(['predict', 'examples/scene-1.png', '--vocab', 'circle', '--treshold', '0.2']);
  assert.equal(opt.code, 2);
  assert.match(
    opt.stderr,
    /^ape predict: Unknown option '--treshold' \(did you mean --threshold\?\)\n\nusage: ape predict IMAGE\|FOLDER/,
  );
  const pull = ape(['pull', '--lst']);
  assert.equal(pull.code, 2);
  assert.match(pull.stderr, /Unknown option '--lst' \(did you mean --list\?\)/);
  // No TF.js "install tfjs-node" banner on any command (the cpu backend, which ape convert uses, printed one).
  const convert = ape([
    'convert',
    '../shared/fixtures/ape-reference/checkpoint.pth',
    '--preset',
    'tiny',
    '--out',
    'tmp-never-written',
  ]);
  assert.equal(convert.code, 1);
  assert.match(convert.stderr, /problem\(s\)/);
  for (const r of [v, cmd, opt, pull, convert])
    assert.doesNotMatch(r.stdout + r.stderr, /tfjs-node|looks like you are running TensorFlow\.js/);
});
