import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-error.js';

/**
 * The whole request body, refused with 413 when it exceeds `maxBytes`: at once from the
 * Content-Length header when there is one, else while streaming. A streamed body over the limit is
 * read on and thrown away up to `drainBytes` more, because a client still writing when the
 * connection closes sees a broken pipe instead of the 413; past that the connection is cut.
 */
export async function readBody(
  request: IncomingMessage,
  maxBytes: number,
  drainBytes = 16 * 1024 * 1024,
): Promise<Buffer> {
  const tooLarge = (size?: number) =>
    new HttpError(
      413,
      'request-too-large',
      size === undefined
        ? `request body is larger than the limit of ${maxBytes} bytes`
        : `request body is ${size} bytes, more than the limit of ${maxBytes} bytes`,
    );
  const declared = request.headers['content-length'];
  if (declared !== undefined) {
    const length = Number(declared);
    if (!Number.isInteger(length) || length < 0)
      throw new HttpError(400, 'bad-content-length', `Content-Length '${declared}' is not a byte count`);
    if (length > maxBytes) throw tooLarge(length);
  }
  // Events rather than for-await: leaving an async iterator early destroys the socket, and then
  // no answer could be sent.
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total <= maxBytes) {
        chunks.push(chunk);
        return;
      }
      chunks.length = 0;
      if (total <= maxBytes + drainBytes) return;
      // The caller answers with Connection: close, which ends the upload.
      cleanup();
      request.pause();
      reject(tooLarge());
    };
    const onEnd = () => {
      cleanup();
      if (total > maxBytes) reject(tooLarge());
      else resolve(Buffer.concat(chunks, total));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(new HttpError(400, 'bad-request-body', `the request body could not be read: ${error.message}`));
    };
    const cleanup = () => {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onError);
    };
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onError);
  });
}
