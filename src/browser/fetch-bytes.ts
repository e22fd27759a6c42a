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
  const length = Number(response.headers.get('content-length') ?? Number.NaN);
  const known = Number.isSafeInteger(length) && length >= 0;
  const base = options.progressBase ?? 0;
  const total = options.progressTotal ?? (known ? length : 0);
  if (!response.body) return { bytes: new Uint8Array(await response.arrayBuffer()), response };
  const reader = response.body.getReader();
  let out = new Uint8Array(known ? length : 1 << 16);
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
  return { bytes: known ? out : out.slice(0, loaded), response };
}

/**
 * Bytes [start, end] of `url` (a 206 answer for exactly that range: a server that sends the
 * whole file instead is refused, so a large file is never downloaded by mistake).
 */
export async function fetchRange(
  url: string,
  name: string,
  start: number,
  end: number,
  options: FetchBytesOptions = {},
): Promise<FetchedBytes> {
  const fetched = await fetchBytes(url, name, {
    ...options,
    headers: { ...options.headers, range: `bytes=${start}-${end}` },
  });
  const range = fetched.response.headers.get('content-range');
  if (fetched.response.status !== 206 || !range?.startsWith(`bytes ${start}-${end}/`))
    throw new Error(
      `${name}: asked for bytes ${start}-${end}, the server answered ${fetched.response.status} (${range ?? 'no Content-Range'})`,
    );
  return fetched;
}

/** The file size a 206 answer's Content-Range names (`bytes A-B/SIZE`). */
export function rangeFileSize(response: Response, name: string): number {
  const match = /^bytes \d+-\d+\/(\d+)$/.exec(response.headers.get('content-range') ?? '');
  if (!match) throw new Error(`${name}: the server gave no file size (Content-Range)`);
  return Number(match[1]);
}
