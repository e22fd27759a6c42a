import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSynthDataset } from '../../src/data/synth/write-dataset.js';
import { ape, repoRoot } from '../cli/ape-cli.js';

let work: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'ape-engine-cli-'));
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** The arguments of package.json's `npm start` after `node dist/cli/main.js`, with the shell's quoting and glob undone. */
async function npmStartArgs(): Promise<string[]> {
  const pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const words = (pkg.scripts.start.match(/"[^"]*"|\S+/g) ?? []).map((w) => w.replace(/^"(.*)"$/, '$1'));
  assert.deepEqual(words.slice(0, 3), ['node', 'dist/cli/main.js', 'predict']);
  const examples = (await readdir(join(repoRoot, 'examples'))).filter((f) => f.endsWith('.png')).sort();
  return words
    .slice(2)
    .flatMap((w) => (w === 'examples/*.png' ? examples.map((f) => `examples/${f}`) : [w]))
    .filter((w) => w !== '--overwrite');
}

interface InstanceJson {
  prompt: string;
  bbox: number[];
  score: number;
}

/** Pairs each instance of `a` with an unused one of `b` with the same prompt, a box within 0.5 px and a score within 1e-3. */
function assertSameInstances(a: InstanceJson[], b: InstanceJson[], where: string): void {
  assert.equal(a.length, b.length, `${where}: ${a.length} vs ${b.length} instances`);
  const free = new Set(b.keys());
  for (const inst of a) {
    const k = [...free].find((j) => {
      const other = b[j]!;
      return (
        other.prompt === inst.prompt &&
        Math.abs(other.score - inst.score) < 1e-3 &&
        other.bbox.every((v, i) => Math.abs(v - inst.bbox[i]!) <= 0.5)
      );
    });
    assert.ok(k !== undefined, `${where}: no match for ${JSON.stringify(inst)}`);
    free.delete(k);
  }
}

test("npm start's command gives the same instances and grounding on both engines (labels, boxes within 0.5 px, scores within 1e-3)", async () => {
  const args = await npmStartArgs();
  const outputs: Record<string, string> = {};
  for (const engine of ['tfjs', 'ort']) {
    outputs[engine] = join(work, `start-${engine}`);
    const out = args.map((a) => (a === 'predictions' ? outputs[engine]! : a));
    const r = ape([...out, '--engine', engine]);
    assert.equal(r.code, 0, r.stderr);
  }
  const images = (await readdir(outputs.tfjs!)).filter((f) => /^scene-\d\.json$/.test(f));
  assert.equal(images.length, 4);
  let instances = 0;
  for (const file of images) {
    const [tfjs, ort] = await Promise.all(
      ['tfjs', 'ort'].map(async (e) => JSON.parse(await readFile(join(outputs[e]!, file), 'utf8'))),
    );
    assertSameInstances(ort.instances, tfjs.instances, file);
    instances += tfjs.instances.length;
    assertSameInstances(
      ort.grounding.map((g: { sentence: string; bbox: number[]; score: number }) => ({ ...g, prompt: g.sentence })),
      tfjs.grounding.map((g: { sentence: string; bbox: number[]; score: number }) => ({ ...g, prompt: g.sentence })),
      `${file} grounding`,
    );
  }
  assert.ok(instances >= 8, `only ${instances} instances in the four examples`);
});

test('ape eval model gives the same numbers to 3 decimals on both engines (8 synthetic images, seed 11)', async () => {
  const data = join(work, 'synth');
  await writeSynthDataset(data, { images: 8, seed: 11, size: 256 });
  const results: Record<string, Record<string, unknown>> = {};
  for (const engine of ['tfjs', 'ort']) {
    const json = join(work, `eval-${engine}.json`);
    const r = ape(['eval', 'model', '--model', 'models/default', '--data', data, '--engine', engine, '--json', json]);
    assert.equal(r.code, 0, r.stderr);
    results[engine] = JSON.parse(await readFile(json, 'utf8'));
  }
  const { tfjs, ort } = results as { tfjs: Record<string, unknown>; ort: Record<string, unknown> };
  // Every number of the JSON (12 box stats, 12 mask stats, mIoU, referring, per category) at 3 decimals.
  const rounded = (value: unknown): unknown =>
    typeof value === 'number'
      ? value.toFixed(3)
      : Array.isArray(value)
        ? value.map(rounded)
        : value && typeof value === 'object'
          ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rounded(v)]))
          : value;
  assert.deepEqual(rounded(ort), rounded(tfjs));
  // Numbers worth comparing: the shipped model finds things on its own world.
  const bbox = tfjs.bbox as number[];
  assert.ok(bbox[0]! > 0.1, `box AP ${bbox[0]}`);
  assert.ok((tfjs.miou as number) > 0.1, `mIoU ${tfjs.miou}`);
  assert.ok((tfjs.referring_acc as number) > 0, `referring ${tfjs.referring_acc}`);
});

test('an engine that does not exist is refused by name by every command that runs the model', () => {
  const commands = [
    ['predict', 'examples/scene-1.png', '--vocab', 'circle'],
    ['eval', 'model', '--model', 'models/default', '--data', work],
    ['serve', '--port', '0'],
    ['annotate', work, '--vocab', 'circle', '--out', join(work, 'annotated')],
    ['worker', '--queue', 'redis://127.0.0.1:1/0'],
  ];
  for (const command of commands) {
    const r = ape([...command, '--engine', 'onnx']);
    assert.equal(r.code, 2, `${command[0]}: ${r.stderr}`);
    assert.match(r.stderr, /--engine onnx: not an engine this command runs on; available: tfjs, ort/, command[0]);
  }
});
