import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/engine.js';
import { pullModel } from '../../src/inference/model-hub.js';
import { loadModel, saveModel } from '../../src/inference/model-files.js';
import { createModel } from '../../src/inference/create-model.js';
import { RELEASED_MODELS, releasedModel } from '../../src/inference/released-models.js';
import { readSafetensorsFile } from '../../src/io/safetensors-node.js';
import { ApeNetwork } from '../../src/modeling/ape-network.js';
import { tinyConfig } from '../../src/modeling/config.js';
import { WordTokenizer } from '../../src/text/word-tokenizer.js';
import { startFakeHub } from '../io/fake-hub.js';
import { writeTinyTorchCheckpoint } from '../io/tiny-torch-export.js';
import { ape, repoRoot } from './ape-cli.js';

const FIXTURE_SHA256 = 'f5b822e6e64a84360c537d69198bf1a21ca5d907bf142113acab899c12c7ec86';
const dir = mkdtempSync(join(tmpdir(), 'ape-pull-'));
after(() => rmSync(dir, { recursive: true, force: true }));
before(async () => {
  await initEngine({ backend: 'cpu' });
});

/** `ape ...` as a child process with its own environment, asynchronously (the fake hub runs in this process). */
function apeAsync(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('the table: every name has its hub path and APE config from APE README; the other rows say what differs', () => {
  assert.deepEqual(
    RELEASED_MODELS.map((m) => [m.name, m.preset]),
    [
      ['ape-ti', 'ape-ti'],
      ['ape-l-d', 'ape-d'],
      ['ape-l-c', null],
      ['ape-l-b', null],
      ['ape-l-a', null],
    ],
  );
  assert.equal(
    releasedModel('APE-Ti').hub.path,
    'configs/LVISCOCOCOCOSTUFF_O365_OID_VGR_SA1B_REFCOCO_GQA_PhraseCut_Flickr30k/ape_deta/ape_deta_vitt_eva02_vlf_lsj1024_cp_16x4_1080k_mdl_20240203_230000/model_final.pth',
  );
  assert.equal(releasedModel('APE-L_D').name, 'ape-l-d');
  assert.throws(
    () => releasedModel('ape-l-a'),
    /APE-L_A \('ape-l-a'\) is not supported yet: its text tower is EVA01-CLIP-g\/14/,
  );
  assert.throws(
    () => releasedModel('ape-xl'),
    /'ape-xl' is not a released model name \(ape-ti, ape-l-d, ape-l-c, ape-l-b, ape-l-a\)/,
  );
});

test('ape pull ape-ti: downloaded from the hub (progress, sha256 verified), then converted; a checkpoint that does not fit is refused and kept, no model folder is left', async () => {
  const hub = await startFakeHub([
    {
      ...releasedModel('ape-ti').hub,
      bytes: new Uint8Array(
        readFileSync(new URL('../../../shared/fixtures/ape-reference/checkpoint.pth', import.meta.url)),
      ),
    },
  ]);
  const home = join(dir, 'home-ti');
  try {
    const r = await apeAsync(['pull', 'ape-ti'], { HF_ENDPOINT: hub.endpoint, APE_HOME: home, HF_TOKEN: '' });
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /downloading APE-Ti \(shenyunhang\/APE, configs\/LVISCOCOCOCOSTUFF_O365_OID_VGR_SA1B_REFCOCO_GQA_PhraseCut_Flickr30k\/ape_deta\/ape_deta_vitt_eva02_vlf_lsj1024_cp_16x4_1080k_mdl_20240203_230000\/model_final\.pth\)/,
    );
    assert.match(r.stderr, /download: 8\/8 /);
    assert.match(r.stderr, new RegExp(`downloaded 7871560 bytes, sha256 ${FIXTURE_SHA256} \\(verified\\)`));
    // The fixture is APE-D's layout at toy sizes: the ape-ti preset's shapes do not fit.
    assert.match(
      r.stderr,
      /ape pull: APE-Ti: the download is kept at .*model_final\.pth, but converting it failed: .*problem\(s\)/,
    );
    assert.deepEqual(readdirSync(home), ['downloads']);
    assert.equal(existsSync(join(home, 'downloads', 'ape-ti', 'model_final.pth')), true);
    // The next run uses the download, with no new request.
    const before = hub.storageRequests.length;
    const again = await apeAsync(['pull', 'ape-ti'], { HF_ENDPOINT: hub.endpoint, APE_HOME: home });
    assert.match(again.stderr, /using the downloaded .*model_final\.pth/);
    assert.equal(hub.storageRequests.length, before);
    const unsupported = ape(['pull', 'ape-l-b']);
    assert.equal(unsupported.code, 1);
    assert.match(unsupported.stderr, /APE-L_B \('ape-l-b'\) is not supported yet: its text tower is EVA01-CLIP-g\/14/);
    const list = ape(['pull', '--list']);
    assert.equal(list.code, 0);
    assert.match(
      list.stdout,
      /ape-l-d +APE-L_D +preset ape-d: .*\n +APE config configs\/LVISCOCOCOCOSTUFF_O365_OID_VGR_SA1B_REFCOCO_GQA_PhraseCut_Flickr30k\/ape_deta\/ape_deta_vitl_eva02_clip_vlf_lsj1024_cp_16x4_1080k_mdl\.py/,
    );
  } finally {
    await hub.close();
  }
});

test('pullModel: download, conversion into APE_HOME/models/NAME (the checkpoint removed), then served from the cache', async () => {
  const net = new ApeNetwork(tinyConfig(), WordTokenizer.hashing(4096, 16), 5);
  const ckpt = join(dir, 'tiny.pth');
  const expected = writeTinyTorchCheckpoint(ckpt, net.namedParameters());
  net.dispose();
  const entry = {
    name: 'tiny-test',
    title: 'Tiny',
    preset: 'tiny' as const,
    hub: { repo: 'someone/tiny', revision: 'main', path: 'run/model_final.pth' },
    apeConfig: 'none',
    summary: 'test',
  };
  const hub = await startFakeHub([{ ...entry.hub, bytes: new Uint8Array(readFileSync(ckpt)) }]);
  const home = join(dir, 'home-tiny');
  try {
    hub.cuts.push(100_000);
    const r = await pullModel(entry, { home, endpoint: hub.endpoint });
    assert.deepEqual(r, { dir: join(home, 'models', 'tiny-test'), pulled: true });
    const ranges = hub.storageRequests.map((q) => q.range);
    assert.equal(ranges[0], undefined);
    assert.match(ranges[1]!, /^bytes=\d+-$/);
    assert.equal(ranges.length, 2);
    const file = await readSafetensorsFile(join(r.dir, 'model.safetensors'));
    assert.equal(file.tensors.size, expected.size);
    for (const [name, values] of expected) assert.deepEqual(file.tensors.get(name)!.data, values, name);
    const source = JSON.parse(readFileSync(join(r.dir, 'source.json'), 'utf8')) as { verified: boolean; hub: unknown };
    assert.deepEqual([source.verified, source.hub], [true, entry.hub]);
    assert.deepEqual(readdirSync(join(home, 'downloads')), []);
    assert.deepEqual(readdirSync(join(home, 'models')), ['tiny-test']);
    const requests = hub.hubRequests.length;
    assert.deepEqual(await pullModel(entry, { home, endpoint: hub.endpoint }), { dir: r.dir, pulled: false });
    assert.equal(hub.hubRequests.length, requests);
  } finally {
    await hub.close();
  }
});

test("loadModel('ape-ti') reads the cached folder of APE_HOME without asking the network; --model names a missing folder clearly", async () => {
  const home = join(dir, 'home-cached');
  const model = await createModel('tiny', { seed: 3 });
  await saveModel(model, join(home, 'models', 'ape-ti'));
  const saved = model.namedParameters().get('transformer.level_embeds')!.dataSync();
  model.dispose();
  const previous = process.env.APE_HOME;
  process.env.APE_HOME = home;
  try {
    const loaded = await loadModel('ape-ti', { endpoint: 'http://127.0.0.1:1' });
    assert.deepEqual(loaded.namedParameters().get('transformer.level_embeds')!.dataSync(), saved);
    loaded.dispose();
  } finally {
    if (previous === undefined) delete process.env.APE_HOME;
    else process.env.APE_HOME = previous;
  }
  const r = ape(['predict', 'examples/scene-1.png', '--vocab', 'circle', '--model', 'models/nothing-here']);
  assert.equal(r.code, 2);
  assert.match(
    r.stderr,
    /--model models\/nothing-here: no such folder, and not a released model name \(ape-ti, ape-l-d; 'ape pull --list' shows them all\)/,
  );
});
