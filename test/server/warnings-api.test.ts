import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, type RunningServer } from './server-process.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
let server: RunningServer;
let scene: string;

before(async () => {
  scene = (await readFile(join(root, 'examples', 'scene-2.png'))).toString('base64');
  server = await startServer(['--model', join(root, 'models', 'default')]);
});

after(async () => {
  await server?.stop();
});

// biome-ignore lint/suspicious/noExplicitAny: response JSON
async function predict(body: Record<string, unknown>): Promise<{ status: number; body: any }> {
  const r = await fetch(new URL('/v1/predict', server.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ image: scene, ...body }),
  });
  return { status: r.status, body: await r.json() };
}

const share = (body: { semantic: { segments: { prompt: string; area: number }[] } }, prompt: string) =>
  body.semantic.segments.filter((s) => s.prompt === prompt).reduce((a, s) => a + s.area, 0) / (256 * 256);

test('the API names prompt words the shipped model does not know (warnings) and takes semanticThreshold (default 0.1)', async () => {
  const r = await predict({ vocabulary: ['cat', 'circle'] });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.warnings.length, 1);
  assert.match(
    r.body.warnings[0],
    /^'cat' is not in this model's vocabulary, so prompts with it get meaningless scores; this model knows 41 words: above, .*circle.*$/,
  );
  assert.ok(share(r.body, 'circle') < 0.1, `circle ${share(r.body, 'circle')}`);
  const known = await predict({ vocabulary: ['circle', 'sky'], sentences: ['the red star'] });
  assert.deepEqual(known.body.warnings, []);
  const apeMap = await predict({ vocabulary: ['cat', 'circle'], semanticThreshold: 0 });
  assert.equal(share(apeMap.body, 'circle') + share(apeMap.body, 'cat'), 1);
  const bad = await predict({ vocabulary: ['circle'], semanticThreshold: 2 });
  assert.equal(bad.status, 422);
  assert.equal(bad.body.error.code, 'bad-semantic-threshold');
  assert.match(bad.body.error.message, /semanticThreshold must be a number from 0 to 1, got 2/);
});
