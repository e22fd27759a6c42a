import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { downloadHubFile, hubFileUrl, sha256FromEtag } from '../../src/io/hub/hub-download.js';
import { startFakeHub } from './fake-hub.js';

const FIXTURE = new URL('../../../shared/fixtures/ape-reference/checkpoint.pth', import.meta.url);
// From the fixture's README.
const FIXTURE_SHA256 = 'f5b822e6e64a84360c537d69198bf1a21ca5d907bf142113acab899c12c7ec86';
const bytes = new Uint8Array(readFileSync(FIXTURE));
const ref = { repo: 'shenyunhang/APE', revision: 'main', path: 'configs/x/ape_deta/run_1/model_final.pth' };
const dir = mkdtempSync(join(tmpdir(), 'ape-hub-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `model-${++n}.pth`);

test('hub URLs and ETags: the resolve URL escapes each path segment; only a 64-hex ETag is a sha256', () => {
  assert.equal(
    hubFileUrl({ repo: 'a/b', revision: 'main', path: 'x y/m#1.pth' }, 'https://hf-mirror.example/'),
    'https://hf-mirror.example/a/b/resolve/main/x%20y/m%231.pth',
  );
  assert.equal(sha256FromEtag(`W/"${FIXTURE_SHA256.toUpperCase()}"`), FIXTURE_SHA256);
  assert.equal(sha256FromEtag('"0123456789abcdef0123456789abcdef01234567"'), undefined);
  assert.equal(sha256FromEtag(null), undefined);
});

test('download through the redirect: bytes and sha256 checked, the token goes to the hub and not to storage', async () => {
  const hub = await startFakeHub([{ ...ref, bytes }], { token: 'secret' });
  try {
    const path = fresh();
    const seen: number[] = [];
    const r = await downloadHubFile(ref, path, {
      endpoint: hub.endpoint,
      token: 'secret',
      onProgress: (received) => seen.push(received),
    });
    assert.deepEqual(
      { size: r.size, sha256: r.sha256, resumedFrom: r.resumedFrom, verified: r.verified },
      { size: 7871560, sha256: FIXTURE_SHA256, resumedFrom: 0, verified: true },
    );
    assert.deepEqual(new Uint8Array(readFileSync(path)), bytes);
    assert.equal(existsSync(`${path}.incomplete`), false);
    assert.equal(seen.at(-1), 7871560);
    assert.deepEqual(
      hub.hubRequests.map((q) => [q.method, q.path, q.authorization]),
      [['HEAD', `/shenyunhang/APE/resolve/main/${ref.path}`, 'Bearer secret']],
    );
    assert.deepEqual(hub.storageRequests, [{ range: undefined, authorization: undefined }]);
    // HF_TOKEN is the default token; without one the gated repository refuses.
    await assert.rejects(
      downloadHubFile(ref, fresh(), { endpoint: hub.endpoint, token: '' }),
      /refused shenyunhang\/APE\/configs\/x\/ape_deta\/run_1\/model_final\.pth \(HTTP 401\).*set HF_TOKEN/,
    );
  } finally {
    await hub.close();
  }
});

test('an interrupted transfer resumes with a range, within the call and in the next one; nothing is lost or doubled', async () => {
  const hub = await startFakeHub([{ ...ref, bytes }]);
  try {
    hub.cuts.push(3_000_000);
    const path = fresh();
    const r = await downloadHubFile(ref, path, { endpoint: hub.endpoint });
    assert.equal(r.sha256, FIXTURE_SHA256);
    // The client keeps what it had read when the connection closed: at most the 3,000,000 bytes sent.
    const ranges = hub.storageRequests.map((q) => q.range);
    assert.equal(ranges.length, 2);
    assert.equal(ranges[0], undefined);
    const resumeAt = Number(/^bytes=(\d+)-$/.exec(ranges[1]!)?.[1]);
    assert.ok(resumeAt > 0 && resumeAt <= 3_000_000, ranges[1]);

    // No retries left: the partial file is kept and named; the next call continues it.
    hub.storageRequests.length = 0;
    hub.cuts.push(1_234_567);
    const second = fresh();
    const error = await downloadHubFile(ref, second, { endpoint: hub.endpoint, retries: 0 }).then(
      () => null,
      (e: Error) => e,
    );
    assert.match(
      error!.message,
      /interrupted after \d+ of 7871560 bytes .*\.incomplete is kept and the next run resumes it/,
    );
    const kept = Number(/after (\d+) of/.exec(error!.message)![1]);
    assert.ok(kept > 0 && kept <= 1_234_567, `${kept}`);
    assert.equal(statSync(`${second}.incomplete`).size, kept);
    assert.equal(existsSync(second), false);
    const resumed = await downloadHubFile(ref, second, { endpoint: hub.endpoint });
    assert.deepEqual(
      { sha256: resumed.sha256, resumedFrom: resumed.resumedFrom },
      { sha256: FIXTURE_SHA256, resumedFrom: kept },
    );
    assert.deepEqual(
      hub.storageRequests.map((q) => q.range),
      [undefined, `bytes=${kept}-`],
    );
    assert.deepEqual(new Uint8Array(readFileSync(second)), bytes);
    assert.equal(existsSync(`${second}.incomplete`), false);

    // A server that ignores the range sends everything again: the file starts over, still right.
    hub.ignoreRanges = true;
    const third = fresh();
    writeFileSync(`${third}.incomplete`, bytes.subarray(0, 1000));
    const restarted = await downloadHubFile(ref, third, { endpoint: hub.endpoint });
    assert.equal(restarted.sha256, FIXTURE_SHA256);
    assert.deepEqual(new Uint8Array(readFileSync(third)), bytes);
  } finally {
    await hub.close();
  }
});

test('a wrong checksum, a missing file and no network are refused with clear messages, leaving nothing behind', async () => {
  const wrong = 'ab'.repeat(32);
  const hub = await startFakeHub([{ ...ref, bytes, etag: wrong }]);
  try {
    const path = fresh();
    await assert.rejects(
      downloadHubFile(ref, path, { endpoint: hub.endpoint }),
      new RegExp(`sha256 ${FIXTURE_SHA256} does not match the expected ${wrong}; the download was deleted`),
    );
    assert.equal(existsSync(path), false);
    assert.equal(existsSync(`${path}.incomplete`), false);
    // A pinned checksum wins over the hub's.
    const pinned = await downloadHubFile(ref, path, { endpoint: hub.endpoint, sha256: FIXTURE_SHA256 });
    assert.equal(pinned.verified, true);
    await assert.rejects(
      downloadHubFile({ ...ref, path: 'configs/nope/model_final.pth' }, fresh(), { endpoint: hub.endpoint }),
      /configs\/nope\/model_final\.pth is not in shenyunhang\/APE at revision 'main' \(HTTP 404/,
    );
  } finally {
    await hub.close();
  }
  // A port nobody listens on.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const path = fresh();
  await assert.rejects(
    downloadHubFile(ref, path, { endpoint: `http://127.0.0.1:${port}` }),
    new RegExp(
      `cannot reach http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\): no network\\? A mirror can be set with HF_ENDPOINT`,
    ),
  );
  assert.equal(existsSync(`${path}.incomplete`), false);
});
