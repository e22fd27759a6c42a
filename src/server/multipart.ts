import { HttpError } from './http-error.js';

/** One part of a multipart/form-data body. `data` is a view into the body, not a copy. */
export interface MultipartPart {
  name: string;
  filename?: string;
  contentType?: string;
  data: Buffer;
}

export interface MultipartLimits {
  /** Most parts accepted. */
  maxParts: number;
  /** Longest header block of one part. */
  maxHeaderBytes?: number;
}

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');
const DEFAULT_MAX_HEADER_BYTES = 8 * 1024;

function bad(message: string): HttpError {
  return new HttpError(400, 'bad-multipart', `multipart body: ${message}`);
}

/** The boundary parameter of a multipart/form-data Content-Type (RFC 2046: 1-70 characters). */
export function multipartBoundary(contentType: string): string {
  const match = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2];
  if (boundary === undefined) throw bad('the Content-Type has no boundary parameter');
  if (boundary.length > 70) throw bad(`boundary is ${boundary.length} characters, more than the 70 allowed`);
  return boundary;
}

/** A header parameter value (`name="x"`, `filename=y`), quotes and backslash escapes removed. */
function headerParam(header: string, param: string): string | undefined {
  const re = new RegExp(`;\\s*${param}=(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]*))`, 'i');
  const match = re.exec(header);
  if (!match) return undefined;
  return match[1] !== undefined ? match[1].replace(/\\(.)/g, '$1') : match[2];
}

function parseHeaders(block: string, index: number): { name: string; filename?: string; contentType?: string } {
  let disposition: string | undefined;
  let contentType: string | undefined;
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw bad(`part ${index} has a malformed header line '${line.slice(0, 80)}'`);
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (key === 'content-disposition') disposition = value;
    else if (key === 'content-type') contentType = value;
  }
  if (disposition === undefined || !/^form-data\b/i.test(disposition))
    throw bad(`part ${index} has no 'Content-Disposition: form-data' header`);
  const name = headerParam(disposition, 'name');
  if (name === undefined || name.length === 0) throw bad(`part ${index} has no field name`);
  const filename = headerParam(disposition, 'filename');
  return {
    name,
    ...(filename !== undefined ? { filename } : {}),
    ...(contentType !== undefined ? { contentType } : {}),
  };
}

/**
 * Splits a complete multipart/form-data body into its parts (RFC 7578). Bounded: at most
 * `maxParts` parts, each header block at most `maxHeaderBytes`; part data are views into `body`.
 * Anything that does not follow the format is refused with a 400 naming the problem.
 */
export function parseMultipart(body: Buffer, boundary: string, limits: MultipartLimits): MultipartPart[] {
  const maxHeader = limits.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  const delimiter = Buffer.from(`--${boundary}`);
  let position = body.indexOf(delimiter);
  if (position < 0) throw bad(`the boundary '${boundary}' does not occur in the body`);
  const parts: MultipartPart[] = [];
  const next = Buffer.from(`\r\n--${boundary}`);
  for (;;) {
    position += delimiter.length;
    // After a delimiter: '--' closes the body, CRLF starts a part.
    if (body[position] === 0x2d && body[position + 1] === 0x2d) return parts;
    // Transport padding (spaces and tabs) may precede the CRLF.
    while (body[position] === 0x20 || body[position] === 0x09) position++;
    if (!body.subarray(position, position + 2).equals(CRLF))
      throw bad('a boundary line is not followed by a line break');
    position += 2;
    if (parts.length >= limits.maxParts) throw bad(`more than ${limits.maxParts} parts`);
    const headerEnd = body.indexOf(HEADER_END, position);
    if (headerEnd < 0 || headerEnd - position > maxHeader) {
      throw bad(
        headerEnd < 0
          ? `part ${parts.length} has no end of headers`
          : `part ${parts.length} has more than ${maxHeader} bytes of headers`,
      );
    }
    const headers = parseHeaders(body.subarray(position, headerEnd).toString('utf8'), parts.length);
    const dataStart = headerEnd + HEADER_END.length;
    const dataEnd = body.indexOf(next, dataStart);
    if (dataEnd < 0)
      throw bad(`part ${parts.length} ('${headers.name}') is not closed by a boundary; the body may be cut off`);
    parts.push({ ...headers, data: body.subarray(dataStart, dataEnd) });
    position = dataEnd + 2;
  }
}
