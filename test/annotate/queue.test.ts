import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { ape } from '../cli/ape-cli.js';
import { VOCAB, journalEntries, killGroup, makeImageFolder, startApe, waitUntil, type ApeProcess } from './fixtures.js';
import { TestRedis, freePort } from './redis-server.js';

const read = (path: string) => readFileSync(path, 'utf8');

describe('ape annotate --queue and ape worker on a real Redis', () => {
  let root = '';
  let images = '';
  let redis: TestRedis;
  const workers: ApeProcess[] = [];
  const annotate = (out: string, ...extra: string[]) => [
    'annotate',
    images,
    '--vocab',
    VOCAB,
    '--out',
    join(root, out),
    '--queue',
    redis.url,
    ...extra,
  ];
  const sameAsOneProcess = (out: string) => {
    assert.equal(read(join(root, out, 'annotations.json')), read(join(root, 'ref', 'annotations.json')));
    // The poisoned image (a PNG that does not decode) is in errors.json, as in the local run.
    assert.equal(read(join(root, out, 'errors.json')), read(join(root, 'ref', 'errors.json')));
  };

  before(async () => {
    ({ root, images } = await makeImageFolder());
    redis = await TestRedis.start();
    for (let i = 0; i < 3; i++) workers.push(startApe(['worker', '--queue', redis.url, '--lock-seconds', '2']));
    const ref = ape(['annotate', images, '--vocab', VOCAB, '--out', join(root, 'ref')]);
    assert.equal(ref.code, 0, ref.stderr);
    await waitUntil(() => workers.every((w) => /model \w+ loaded/.test(w.output())), 'three workers with their model');
  });

  after(async () => {
    for (const w of workers) killGroup(w);
    await redis?.down();
  });

  it('three workers, one SIGKILLed and one frozen past its lock mid-run: the file of a one-process run', async () => {
    const producer = startApe(annotate('three'));
    await waitUntil(() => journalEntries(join(root, 'three')) >= 1, 'the first result');
    killGroup(workers[0]!);
    killGroup(workers[1]!, 'SIGSTOP');
    await sleep(5000);
    killGroup(workers[1]!, 'SIGCONT');
    assert.equal(await producer.exit, 0, producer.output());
    sameAsOneProcess('three');
    assert.match(producer.output(), /4 images annotated .* 1 unreadable/);
  });

  it('Redis restarted (empty) mid-run: producer and workers reconnect, say so, and lose nothing', async () => {
    const producer = startApe(annotate('restart'));
    await waitUntil(() => journalEntries(join(root, 'restart')) >= 1, 'the first result');
    await redis.down();
    await sleep(1500);
    await redis.up();
    assert.equal(await producer.exit, 0, producer.output());
    sameAsOneProcess('restart');
    assert.match(
      producer.output(),
      /lost the connection to Redis at 127\.0\.0\.1:\d+.*; reconnecting \(giving up after 60 s\)/,
    );
    assert.match(producer.output(), /reconnected to Redis at 127\.0\.0\.1:\d+ after \d+\.\d s/);
    await waitUntil(
      () => workers.slice(1).every((w) => /reconnected to Redis/.test(w.output())),
      'the workers to reconnect',
      30_000,
    );
  });

  it('a producer killed mid-run and started again finishes from the queue and its journal', async () => {
    const first = startApe(annotate('producer'));
    await waitUntil(() => journalEntries(join(root, 'producer')) >= 1, 'the first result');
    killGroup(first);
    await first.exit;
    const again = startApe(annotate('producer'));
    assert.equal(await again.exit, 0, again.output());
    assert.match(again.output(), /resuming: \d of 5 images/);
    sameAsOneProcess('producer');
  });

  it('gives up with a clear error when Redis stays away past --redis-timeout', async () => {
    const port = await freePort();
    const r = ape([
      'annotate',
      images,
      '--vocab',
      VOCAB,
      '--out',
      join(root, 'nowhere'),
      '--queue',
      `redis://127.0.0.1:${port}/0`,
      '--redis-timeout',
      '1',
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`cannot reach Redis at 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\); retrying`));
    assert.match(
      r.stderr,
      new RegExp(
        `could not connect to Redis at 127\\.0\\.0\\.1:${port} and it stayed unreachable for 1 s \\(ECONNREFUSED\\); giving up`,
      ),
    );
    const w = ape(['worker', '--queue', `redis://127.0.0.1:${port}/0`, '--redis-timeout', '1']);
    assert.equal(w.code, 1);
    assert.match(
      w.stderr,
      new RegExp(`ape worker: could not connect to Redis at 127\\.0\\.0\\.1:${port} and it stayed unreachable for 1 s`),
    );
  });
});
