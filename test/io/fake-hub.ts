import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A loopback stand-in for the Hugging Face hub, serving files the way the hub does: the hub
 * origin answers `/{repo}/resolve/{revision}/{path}` with a 302 to a second origin (the storage),
 * naming the size and sha256 in X-Linked-Size / X-Linked-Etag; the storage serves byte ranges.
 * Knobs: a required token, a wrong checksum, transfers cut after N bytes, ranges ignored.
 */
export interface FakeHubFile {
  repo: string;
  path: string;
  bytes: Uint8Array;
  /** The X-Linked-Etag to announce instead of the true sha256. */
  etag?: string;
}

export interface StorageRequest {
  range: string | undefined;
  authorization: string | undefined;
}

export interface FakeHub {
  endpoint: string;
  /** GETs the storage origin received. */
  storageRequests: StorageRequest[];
  /** HEAD/GET requests the hub origin received (method, path, authorization). */
  hubRequests: { method: string; path: string; authorization: string | undefined }[];
  /** The next `cuts.length` storage GETs stop after this many bytes each (the connection is closed). */
  cuts: number[];
  /** When set, the storage answers a range request with the whole file (200). */
  ignoreRanges: boolean;
  close(): Promise<void>;
}

async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; origin: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export async function startFakeHub(files: FakeHubFile[], options: { token?: string } = {}): Promise<FakeHub> {
  const blobs = new Map<string, Uint8Array>();
  const hub: Omit<FakeHub, 'endpoint' | 'close'> = {
    storageRequests: [],
    hubRequests: [],
    cuts: [],
    ignoreRanges: false,
  };
  const storage = await listen((req, res) => {
    hub.storageRequests.push({ range: req.headers.range, authorization: req.headers.authorization });
    const blob = blobs.get(new URL(req.url!, 'http://x').pathname.slice('/blobs/'.length));
    if (!blob) return void res.writeHead(404).end();
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m && !hub.ignoreRanges) start = Number(m[1]);
    if (start >= blob.length && m) return void res.writeHead(416, { 'content-range': `bytes */${blob.length}` }).end();
    const body = blob.subarray(start);
    res.writeHead(m && !hub.ignoreRanges ? 206 : 200, {
      'content-length': String(body.length),
      ...(m && !hub.ignoreRanges ? { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` } : {}),
    });
    const cut = hub.cuts.shift();
    if (cut === undefined) return void res.end(body);
    // Closes once `cut` bytes are sent (the client may have read fewer of them when it notices).
    res.write(body.subarray(0, cut), () => res.socket?.end());
  });
  const front = await listen((req, res) => {
    const url = new URL(req.url!, 'http://x');
    hub.hubRequests.push({
      method: req.method!,
      path: decodeURIComponent(url.pathname),
      authorization: req.headers.authorization,
    });
    if (options.token && req.headers.authorization !== `Bearer ${options.token}`)
      return void res.writeHead(401, { 'x-error-code': 'GatedRepo' }).end();
    const file = files.find((f) => decodeURIComponent(url.pathname) === `/${f.repo}/resolve/main/${f.path}`);
    if (!file) return void res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
    const sha = createHash('sha256').update(file.bytes).digest('hex');
    blobs.set(sha, file.bytes);
    res
      .writeHead(302, {
        location: `${storage.origin}/blobs/${sha}?signature=abc`,
        'x-linked-etag': `"${file.etag ?? sha}"`,
        'x-linked-size': String(file.bytes.length),
        etag: '"0123456789abcdef0123456789abcdef01234567"',
      })
      .end();
  });
  return Object.assign(hub, {
    endpoint: front.origin,
    close: async () => {
      for (const { server } of [front, storage]) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
  });
}
