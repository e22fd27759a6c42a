import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from './http-error.js';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.wasm': 'application/wasm',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.gz': 'application/gzip',
  '.safetensors': 'application/octet-stream',
  '.onnx': 'application/octet-stream',
  '.data': 'application/octet-stream',
};

/** File names a folder may serve: one path segment of plain characters, no dot files. */
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$/;

/** Regular files directly inside `dir` whose names are safe to serve, with their sizes. */
export async function listServableFiles(
  dir: string,
  extensions?: readonly string[],
): Promise<{ name: string; bytes: number }[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files: { name: string; bytes: number }[] = [];
  for (const entry of entries) {
    if (!entry.isFile() || !SAFE_NAME.test(entry.name)) continue;
    if (extensions && !extensions.includes(extname(entry.name).toLowerCase())) continue;
    files.push({ name: entry.name, bytes: (await stat(join(dir, entry.name))).size });
  }
  return files.sort((a, b) => a.name.localeCompare(b.name));
}

/** A byte range of a file, both ends included. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * The one range a `Range` header asks for in a file of `size` bytes: null to send the whole file
 * (no header, another unit, or several ranges, which a server may answer in full), 'unsatisfiable'
 * when it starts past the end (416).
 */
export function requestedRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | null {
  if (!header) return null;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return null;
  const [first, last] = [match[1]!, match[2]!];
  if (first === '') {
    // The last N bytes.
    const n = Number(last);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (start >= size) return 'unsatisfiable';
  if (end < start) return null;
  return { start, end };
}

/** Whether an If-Match / If-None-Match list names `etag` (or is '*'); weak tags compare by their value. */
function listsTag(header: string, etag: string): boolean {
  const bare = (t: string) => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => t.trim() === '*' || bare(t) === bare(etag));
}

/** A validator of a file's version: its size and modification time, after `prefix` (e.g. the model's hash). */
export function fileEtag(size: number, mtimeMs: number, prefix = ''): string {
  return `"${prefix ? `${prefix}.` : ''}${size.toString(36)}.${Math.floor(mtimeMs).toString(36)}"`;
}

export interface SendFileOptions {
  /** Cache-Control (default no-cache: reuse only after revalidating with the ETag). */
  cache?: string;
  /** What the ETag starts with (e.g. the model's hash), followed by the file's size and time. */
  etagPrefix?: string;
}

/**
 * Streams `name` from `dir` when it is one of `allowed` (names, never paths: nothing outside the
 * folder can be asked for); 404 otherwise. Answers HEAD without a body, one byte range (206, or
 * 416 past the end; If-Range honoured), If-None-Match with 304 and a failed If-Match with 412.
 */
export async function sendFile(
  request: IncomingMessage,
  response: ServerResponse,
  dir: string,
  name: string,
  allowed: ReadonlySet<string>,
  options: SendFileOptions = {},
): Promise<void> {
  if (!SAFE_NAME.test(name) || !allowed.has(name))
    throw new HttpError(404, 'not-found', `no file '${name.slice(0, 100)}' here`);
  const path = join(dir, name);
  let size: number;
  let mtimeMs: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new Error('not a file');
    size = info.size;
    mtimeMs = info.mtimeMs;
  } catch {
    throw new HttpError(404, 'not-found', `no file '${name}' here`);
  }
  const etag = fileEtag(size, mtimeMs, options.etagPrefix);
  const cache = options.cache ?? 'no-cache';
  const headers: Record<string, string | number> = {
    'content-type': CONTENT_TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream',
    'cache-control': cache,
    'x-content-type-options': 'nosniff',
    'accept-ranges': 'bytes',
    etag,
  };
  const ifMatch = request.headers['if-match'];
  if (ifMatch && !listsTag(ifMatch, etag))
    throw new HttpError(412, 'precondition-failed', `'${name}' has changed (its version is now ${etag})`);
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch && listsTag(ifNoneMatch, etag)) {
    response.writeHead(304, { etag, 'cache-control': cache });
    response.end();
    return;
  }
  const ifRange = request.headers['if-range'];
  const range = ifRange === undefined || ifRange === etag ? requestedRange(request.headers.range, size) : null;
  if (range === 'unsatisfiable') {
    throw new HttpError(
      416,
      'range-not-satisfiable',
      `'${name}' has ${size} bytes; the range asked for starts past them`,
      {
        'content-range': `bytes */${size}`,
      },
    );
  }
  if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${size}`;
  headers['content-length'] = range ? range.end - range.start + 1 : size;
  response.writeHead(range ? 206 : 200, headers);
  if (request.method === 'HEAD' || size === 0) {
    response.end();
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const stream = createReadStream(path, range ?? {});
    stream.on('error', reject);
    response.on('close', resolve);
    stream.pipe(response);
  });
}
