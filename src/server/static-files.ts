import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { ServerResponse } from 'node:http';
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

/**
 * Streams `name` from `dir` when it is one of `allowed` (names, never paths: nothing outside the
 * folder can be asked for). 404 otherwise.
 */
export async function sendFile(
  response: ServerResponse,
  dir: string,
  name: string,
  allowed: ReadonlySet<string>,
  options: { cache?: string; head?: boolean } = {},
): Promise<void> {
  if (!SAFE_NAME.test(name) || !allowed.has(name))
    throw new HttpError(404, 'not-found', `no file '${name.slice(0, 100)}' here`);
  const path = join(dir, name);
  let size: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new Error('not a file');
    size = info.size;
  } catch {
    throw new HttpError(404, 'not-found', `no file '${name}' here`);
  }
  response.writeHead(200, {
    'content-type': CONTENT_TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream',
    'content-length': size,
    'cache-control': options.cache ?? 'no-cache',
    'x-content-type-options': 'nosniff',
  });
  if (options.head) {
    response.end();
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const stream = createReadStream(path);
    stream.on('error', reject);
    response.on('close', resolve);
    stream.pipe(response);
  });
}
