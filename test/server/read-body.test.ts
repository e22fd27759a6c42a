import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { readBody } from '../../src/server/read-body.js';
import { HttpError } from '../../src/server/http-error.js';

/** A request body streamed in `chunks` pieces of `size` bytes, without a Content-Length. */
function streamedRequest(chunks: number, size: number): { request: IncomingMessage; written: () => number } {
  const stream = new PassThrough();
  let written = 0;
  const request = Object.assign(stream, { headers: {} }) as unknown as IncomingMessage;
  const pump = () => {
    while (written < chunks) {
      written++;
      if (!stream.write(Buffer.alloc(size, 65))) return void stream.once('drain', pump);
    }
    stream.end();
  };
  setImmediate(pump);
  return { request, written: () => written };
}

test('readBody keeps a body within the limit', async () => {
  const { request } = streamedRequest(4, 100);
  const body = await readBody(request, 400, 1000);
  assert.equal(body.length, 400);
});

test('readBody reads an over-limit upload to its end before refusing it (no broken pipe for the client)', async () => {
  const { request, written } = streamedRequest(10, 100);
  await assert.rejects(readBody(request, 400, 1000), (e: unknown) => e instanceof HttpError && e.status === 413);
  assert.equal(written(), 10);
});

test('readBody cuts an upload that goes on past the drain allowance', async () => {
  const { request, written } = streamedRequest(1000, 100);
  await assert.rejects(
    readBody(request, 400, 1000),
    (e: unknown) => e instanceof HttpError && /larger than the limit of 400 bytes/.test(e.message),
  );
  assert.ok(written() < 1000, `written ${written()}`);
});

test('readBody refuses a declared Content-Length over the limit without reading', async () => {
  const stream = new PassThrough();
  const request = Object.assign(stream, { headers: { 'content-length': '5000' } }) as unknown as IncomingMessage;
  await assert.rejects(readBody(request, 400), /5000 bytes, more than the limit of 400 bytes/);
});
