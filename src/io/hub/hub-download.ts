import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { writeFully } from '../atomic-write.js';

/**
 * Downloading one file from a Hugging Face hub repository the way the hub serves it: a HEAD on
 * `{endpoint}/{repo}/resolve/{revision}/{path}` gives the file's size and sha256 (X-Linked-Size,
 * X-Linked-Etag for LFS files) and a redirect to the storage URL; the GET goes there, resuming a
 * `.incomplete` file with an HTTP range. The result is checked (size, sha256) before it is renamed
 * into place; a file that fails the check is deleted, never kept.
 */
export interface HubFileRef {
  repo: string;
  revision: string;
  path: string;
}

export interface HubDownloadOptions {
  /** Hub address; default $HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Bearer token, sent to the hub's own origin only; default $HF_TOKEN. */
  token?: string;
  /** Known sha256 (hex) of the file; otherwise the hub's X-Linked-Etag, when it is one. */
  sha256?: string;
  /** Known size in bytes; otherwise the hub's X-Linked-Size / Content-Length. */
  size?: number;
  /** Called as bytes arrive (`received` counts bytes resumed from an earlier run). */
  onProgress?: (received: number, total: number | undefined) => void;
  /** How many times an interrupted transfer is resumed within this call (default 3). */
  retries?: number;
}

export interface HubDownloadResult {
  path: string;
  size: number;
  sha256: string;
  /** Bytes that were already on disk from an interrupted download. */
  resumedFrom: number;
  /** Whether the sha256 was compared with a known value (pinned or the hub's). */
  verified: boolean;
}

export class HubDownloadError extends Error {
  override name = 'HubDownloadError';
}

export const DEFAULT_HF_ENDPOINT = 'https://huggingface.co';
const MAX_REDIRECTS = 10;

/** `{endpoint}/{repo}/resolve/{revision}/{path}`, each path segment escaped. */
export function hubFileUrl(ref: HubFileRef, endpoint: string): string {
  const path = ref.path.split('/').map(encodeURIComponent).join('/');
  return `${endpoint.replace(/\/+$/, '')}/${ref.repo}/resolve/${encodeURIComponent(ref.revision)}/${path}`;
}

/** A sha256 from an ETag value (`"abc..."`, `W/"abc..."`), or undefined when it is something else (a git sha1). */
export function sha256FromEtag(etag: string | null): string | undefined {
  const value = etag?.replace(/^W\//, '').replace(/"/g, '').trim().toLowerCase();
  return value && /^[0-9a-f]{64}$/.test(value) ? value : undefined;
}

function sizeHeader(value: string | null): number | undefined {
  return value !== null && /^\d+$/.test(value.trim()) ? Number(value) : undefined;
}

/** What a network failure was, in words (fetch only says "fetch failed"). */
function networkReason(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}

interface Endpoint {
  origin: string;
  token: string | undefined;
}

async function request(
  url: URL,
  method: 'HEAD' | 'GET',
  hub: Endpoint,
  headers: Record<string, string> = {},
): Promise<Response> {
  const h: Record<string, string> = { 'user-agent': 'ape-ts', ...headers };
  // The token goes to the hub only: storage redirects carry their own signature.
  if (hub.token && url.origin === hub.origin) h.authorization = `Bearer ${hub.token}`;
  try {
    return await fetch(url, { method, headers: h, redirect: 'manual' });
  } catch (err) {
    throw new HubDownloadError(
      `cannot reach ${url.origin} (${networkReason(err)}): no network? A mirror can be set with HF_ENDPOINT`,
    );
  }
}

function statusError(status: number, url: URL, ref: HubFileRef): HubDownloadError {
  if (status === 401 || status === 403) {
    return new HubDownloadError(
      `${url.origin} refused ${ref.repo}/${ref.path} (HTTP ${status}): the repository is private or gated; set HF_TOKEN to a token that may read it`,
    );
  }
  if (status === 404)
    return new HubDownloadError(
      `${ref.path} is not in ${ref.repo} at revision '${ref.revision}' (HTTP 404 from ${url.href})`,
    );
  return new HubDownloadError(`${url.href}: HTTP ${status}`);
}

interface FileMetadata {
  downloadUrl: URL;
  size: number | undefined;
  sha256: string | undefined;
}

/** HEAD on the resolve URL, following the hub's own redirects up to the one that leaves for storage. */
async function fileMetadata(ref: HubFileRef, hub: Endpoint, endpoint: string): Promise<FileMetadata> {
  let url = new URL(hubFileUrl(ref, endpoint));
  for (let i = 0; i <= MAX_REDIRECTS; i++) {
    const res = await request(url, 'HEAD', hub);
    const linkedEtag = res.headers.get('x-linked-etag');
    const linkedSize = sizeHeader(res.headers.get('x-linked-size'));
    if (res.status >= 300 && res.status < 400) {
      const location = res.headers.get('location');
      if (!location) throw new HubDownloadError(`${url.href}: HTTP ${res.status} without a Location`);
      const next = new URL(location, url);
      // An LFS file: the hub names size and sha256 and sends us to storage, where HEAD may not be signed.
      if (linkedEtag !== null || linkedSize !== undefined)
        return { downloadUrl: next, size: linkedSize, sha256: sha256FromEtag(linkedEtag) };
      url = next;
      continue;
    }
    if (!res.ok) throw statusError(res.status, url, ref);
    return {
      downloadUrl: url,
      size: linkedSize ?? sizeHeader(res.headers.get('content-length')),
      sha256: sha256FromEtag(linkedEtag ?? res.headers.get('etag')),
    };
  }
  throw new HubDownloadError(`${hubFileUrl(ref, endpoint)}: more than ${MAX_REDIRECTS} redirects`);
}

/** GET from `start`, following redirects. */
async function getFrom(url: URL, start: number, hub: Endpoint, ref: HubFileRef): Promise<Response> {
  for (let i = 0; i <= MAX_REDIRECTS; i++) {
    const res = await request(url, 'GET', hub, start > 0 ? { range: `bytes=${start}-` } : {});
    if (res.status >= 300 && res.status < 400) {
      const location = res.headers.get('location');
      if (!location) throw new HubDownloadError(`${url.href}: HTTP ${res.status} without a Location`);
      await res.body?.cancel();
      url = new URL(location, url);
      continue;
    }
    if (!res.ok && res.status !== 416) throw statusError(res.status, url, ref);
    return res;
  }
  throw new HubDownloadError(`${url.href}: more than ${MAX_REDIRECTS} redirects`);
}

async function hashFile(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

const fileSize = (path: string) =>
  stat(path).then(
    (s) => s.size,
    () => 0,
  );

/**
 * Downloads `ref` to `destination` (through `destination.incomplete`, which a later call resumes).
 * Throws HubDownloadError with the reason: unreachable, refused, not found, interrupted (the
 * partial file is kept for the next call), or a size / sha256 that does not match (the file is
 * deleted).
 */
export async function downloadHubFile(
  ref: HubFileRef,
  destination: string,
  options: HubDownloadOptions = {},
): Promise<HubDownloadResult> {
  const endpoint = options.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_HF_ENDPOINT;
  const hub: Endpoint = {
    origin: new URL(endpoint).origin,
    token: options.token ?? (process.env.HF_TOKEN || undefined),
  };
  const meta = await fileMetadata(ref, hub, endpoint);
  const size = options.size ?? meta.size;
  const expectedSha = options.sha256?.toLowerCase() ?? meta.sha256;
  const part = `${destination}.incomplete`;

  let received = await fileSize(part);
  if (size !== undefined && received > size) received = 0;
  const resumedFrom = received;
  let hash = createHash('sha256');
  if (received > 0) await hashFile(part, hash);
  const handle: FileHandle = await open(part, received > 0 ? 'r+' : 'w');
  let attemptsLeft = options.retries ?? 3;
  try {
    for (;;) {
      if (size !== undefined && received === size) break;
      const res = await getFrom(meta.downloadUrl, received, hub, ref);
      if (res.status === 416) {
        // The range is past the end: with no size to compare, what is on disk is taken as complete.
        await res.body?.cancel();
        if (size === undefined) break;
        await restart();
        continue;
      }
      // A server that ignores the range sends the whole file: start over with it.
      if (res.status === 200 && received > 0) await restart();
      if (res.status === 206) {
        const m = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
        if (!m || Number(m[1]) !== received) {
          await res.body?.cancel();
          throw new HubDownloadError(
            `${meta.downloadUrl.href}: asked for bytes from ${received}, got '${res.headers.get('content-range')}'`,
          );
        }
      }
      try {
        await receive(res);
        if (size === undefined || received === size) break;
        throw new Error('the connection closed early');
      } catch (err) {
        if (err instanceof HubDownloadError) throw err;
        if (attemptsLeft-- <= 0) {
          throw new HubDownloadError(
            `download of ${ref.path} interrupted after ${received} of ${size ?? '?'} bytes (${networkReason(err)}); ${part} is kept and the next run resumes it`,
          );
        }
      }
    }
    return await finish();
  } finally {
    await handle.close().catch(() => undefined);
  }

  async function receive(res: Response): Promise<void> {
    if (!res.body) return;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (size !== undefined && received + chunk.byteLength > size) {
        await discard(`the server sent more than the ${size} bytes announced`);
      }
      await writeFully(handle, chunk, received);
      hash.update(chunk);
      received += chunk.byteLength;
      options.onProgress?.(received, size);
    }
  }

  async function restart(): Promise<void> {
    received = 0;
    hash = createHash('sha256');
    await handle.truncate(0);
  }

  async function discard(why: string): Promise<never> {
    await handle.close().catch(() => undefined);
    await unlink(part).catch(() => undefined);
    throw new HubDownloadError(
      `${ref.repo}/${ref.path}: ${why}; the download was deleted (run again to fetch it anew)`,
    );
  }

  async function finish(): Promise<HubDownloadResult> {
    if (size !== undefined && received !== size) await discard(`got ${received} bytes, expected ${size}`);
    const sha256 = hash.digest('hex');
    if (expectedSha !== undefined && sha256 !== expectedSha)
      await discard(`sha256 ${sha256} does not match the expected ${expectedSha}`);
    await handle.close();
    await rename(part, destination);
    return { path: destination, size: received, sha256, resumedFrom, verified: expectedSha !== undefined };
  }
}
