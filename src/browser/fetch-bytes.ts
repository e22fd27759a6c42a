/**
 * Downloads in the page with progress: whole files, or one byte range of a file (the weights the
 * page needs out of a safetensors file, without the rest).
 */

/** Progress of a download: bytes so far and expected (0 when the server does not say). */
export type DownloadProgress = (file: string, loaded: number, total: number) => void;

export interface FetchBytesOptions {
  onProgress?: DownloadProgress;
  /** Request headers (Range, If-Match). */
  headers?: Record<string, string>;
  /** Bytes already counted under this file's name (progress over several ranges of one file). */
  progressBase?: number;
  /** The total shown with the progress (default: this response's length). */
  progressTotal?: number;
}

export interface FetchedBytes {
  bytes: Uint8Array;
  response: Response;
}

/**
 * Fetches `url` into one array, written in place when the server gives its length (a file of a
 * gigabyte is then held once, not twice); a body longer than that length is refused.
 */
export async function fetchBytes(url: string, name: string, options: FetchBytesOptions = {}): Promise<FetchedBytes> {
  const response = await fetch(url, options.headers ? { headers: options.headers } : {});
  if (!response.ok) throw new Error(`${name}: the server answered ${response.status} ${response.statusText}`);
  return { bytes: await readBody(response, name, options), response };
}

/** The length a response announces (Content-Length), or null. */
export function announcedLength(response: Response): number | null {
  const length = Number(response.headers.get('content-length') ?? Number.NaN);
  return Number.isSafeInteger(length) && length >= 0 ? length : null;
}

/** Reads a response's body into one array (see fetchBytes), with progress. */
export async function readBody(response: Response, name: string, options: FetchBytesOptions): Promise<Uint8Array> {
  const length = announcedLength(response);
  const known = length !== null;
  const base = options.progressBase ?? 0;
  const total = options.progressTotal ?? length ?? 0;
  if (!response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  let out = new Uint8Array(length ?? 1 << 16);
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > out.length) {
      if (known) {
        await reader.cancel();
        throw new Error(`${name}: the server sent more than the ${length} bytes it announced`);
      }
      const grown = new Uint8Array(Math.max(out.length * 2, loaded + value.length));
      grown.set(out.subarray(0, loaded));
      out = grown;
    }
    out.set(value, loaded);
    loaded += value.length;
    options.onProgress?.(name, base + loaded, total);
  }
  if (known && loaded !== length) throw new Error(`${name}: got ${loaded} of the ${length} bytes announced`);
  return known ? out : out.slice(0, loaded);
}

/**
 * Asks for bytes [start, end] of `url` and returns the answer unread: a 206 for exactly that range
 * (`ranged`), or a 200 with the whole file from a server that ignores ranges, which the caller may
 * read as a stream (BodyStream) or cancel; anything else is an error naming the file.
 */
export async function requestRange(
  url: string,
  name: string,
  start: number,
  end: number,
  headers: Record<string, string> = {},
): Promise<{ response: Response; ranged: boolean }> {
  const response = await fetch(url, { headers: { ...headers, range: `bytes=${start}-${end}` } });
  if (response.status === 200) return { response, ranged: false };
  const range = response.headers.get('content-range');
  if (response.status !== 206 || !range?.startsWith(`bytes ${start}-${end}/`)) {
    await response.body?.cancel();
    throw new Error(
      `${name}: asked for bytes ${start}-${end}, the server answered ${response.status} (${range ?? 'no Content-Range'})`,
    );
  }
  return { response, ranged: true };
}

/**
 * Bytes [start, end] of `url` (a 206 answer for exactly that range: a server that sends the
 * whole file instead is refused before its body is read, so a large file is never downloaded by mistake).
 */
export async function fetchRange(
  url: string,
  name: string,
  start: number,
  end: number,
  options: FetchBytesOptions = {},
): Promise<FetchedBytes> {
  const { response, ranged } = await requestRange(url, name, start, end, options.headers);
  if (!ranged) {
    await response.body?.cancel();
    throw new Error(`${name}: asked for bytes ${start}-${end}, the server sent the whole file (200)`);
  }
  return { bytes: await readBody(response, name, options), response };
}

/** The file size a 206 answer's Content-Range names (`bytes A-B/SIZE`). */
export function rangeFileSize(response: Response, name: string): number {
  const match = /^bytes \d+-\d+\/(\d+)$/.exec(response.headers.get('content-range') ?? '');
  if (!match) throw new Error(`${name}: the server gave no file size (Content-Range)`);
  return Number(match[1]);
}

/**
 * A response body read in order, a given number of bytes at a time: a file read through once
 * (a server without ranges) without holding more of it than the part asked for.
 */
export class BodyStream {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Received but not yet handed out. */
  private pending: Uint8Array = new Uint8Array(0);
  /** Bytes received so far. */
  received = 0;

  constructor(
    response: Response,
    private readonly name: string,
    private readonly onProgress?: DownloadProgress,
    private readonly total = 0,
  ) {
    if (!response.body) throw new Error(`${name}: the answer has no body`);
    this.reader = response.body.getReader();
  }

  /** The next `n` bytes (one array of them); an error naming the file where it ends first. */
  async read(n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    await this.take(n, (chunk, at) => out.set(chunk, at));
    return out;
  }

  /** Passes over the next `n` bytes. */
  skip(n: number): Promise<void> {
    return this.take(n, () => undefined);
  }

  cancel(): Promise<void> {
    return this.reader.cancel();
  }

  private async take(n: number, use: (chunk: Uint8Array, at: number) => void): Promise<void> {
    let at = 0;
    while (at < n) {
      if (this.pending.length === 0) {
        const { done, value } = await this.reader.read();
        if (done) throw new Error(`${this.name}: the file ended after ${this.received} bytes`);
        this.received += value.length;
        this.onProgress?.(this.name, this.received, this.total);
        this.pending = value;
      }
      const part = this.pending.subarray(0, Math.min(n - at, this.pending.length));
      use(part, at);
      at += part.length;
      this.pending = this.pending.subarray(part.length);
    }
  }
}
