import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createApeServer, type ApeServer } from '../../src/server/app.js';
import { repoRoot } from '../cli/ape-cli.js';
import { makeTestModelDir } from './test-model.js';

let model: { dir: string; remove: () => Promise<void> };
let app: ApeServer;
let base: string;
const notes: string[] = [];

before(async () => {
  model = await makeTestModelDir(5);
  app = await createApeServer({
    modelDir: model.dir,
    engine: 'tfjs',
    limits: { maxPrompts: 2000 },
    log: (line) => notes.push(line),
  });
  base = (await app.listen(0)).url;
});

after(async () => {
  await app?.close();
  await model?.remove();
});

const syllables = ['ka', 'lo', 'mi', 'ne', 'su', 'ta', 'ri', 'vo'];
const names = Array.from({ length: 1200 }, (_, i) =>
  [i % 8, (i >> 3) % 8, (i >> 6) % 8, (i >> 9) % 8].map((k) => syllables[k]).join(''),
);

async function predict(vocabulary: string[]): Promise<number> {
  const image = (await readFile(join(repoRoot, 'examples/scene-2.png'))).toString('base64');
  const answer = await fetch(new URL('/v1/predict', base), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ image, vocabulary, threshold: 0.5 }),
  });
  await answer.arrayBuffer();
  return answer.status;
}

test('ape serve: a request whose prompts are mostly new logs the progress of their encoding; a known list and a few new names log none', async () => {
  assert.equal(await predict(names), 200);
  const lines = notes.filter((l) => l.startsWith('encoding prompts:'));
  assert.ok(lines.length >= 1, notes.join('\n'));
  assert.match(
    lines.at(-1)!,
    /^encoding prompts: 1200\/1200 [\d.]+ (prompt\/s|s\/prompt) elapsed \d\d:\d\d eta 00:00$/,
  );
  const before = notes.length;
  assert.equal(await predict(names), 200);
  assert.equal(await predict(['circle', 'tesk']), 200);
  assert.deepEqual(
    notes.slice(before).filter((l) => l.startsWith('encoding prompts:')),
    [],
  );
});
