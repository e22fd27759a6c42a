import { test } from 'node:test';
import assert from 'node:assert/strict';
import { multipartBoundary, parseMultipart } from '../../src/server/multipart.js';
import { HttpError } from '../../src/server/http-error.js';

/** The body a real client (undici's FormData encoder) writes, with its Content-Type. */
async function encodeForm(form: FormData): Promise<{ body: Buffer; contentType: string }> {
  const response = new Response(form);
  return { body: Buffer.from(await response.arrayBuffer()), contentType: response.headers.get('content-type')! };
}

const status = (code: number, pattern: RegExp) => (error: unknown) =>
  error instanceof HttpError && error.status === code && pattern.test(error.message);

test('parses what FormData encodes: fields, a binary file with name and type', async () => {
  const bytes = new Uint8Array(300).map((_, i) => (i * 37) % 256);
  // Bytes that look like line breaks and dashes inside the file must survive.
  bytes.set([13, 10, 45, 45, 13, 10, 13, 10], 100);
  const form = new FormData();
  form.append('vocabulary', 'circle, square');
  form.append('sentences', 'the red star\nthe "blue" one, left');
  form.append('image', new Blob([bytes], { type: 'image/png' }), 'scene 1.png');
  const { body, contentType } = await encodeForm(form);
  const parts = parseMultipart(body, multipartBoundary(contentType), { maxParts: 10 });
  assert.deepEqual(
    parts.map((p) => p.name),
    ['vocabulary', 'sentences', 'image'],
  );
  assert.equal(parts[0]!.data.toString(), 'circle, square');
  // FormData writes line breaks in text values as CRLF (HTML's form encoding rules).
  assert.equal(parts[1]!.data.toString(), 'the red star\r\nthe "blue" one, left');
  assert.equal(parts[2]!.filename, 'scene 1.png');
  assert.equal(parts[2]!.contentType, 'image/png');
  assert.deepEqual(new Uint8Array(parts[2]!.data), bytes);
});

test('hand-written body: quoted boundary, empty field, closing delimiter', () => {
  const body = Buffer.from(
    '--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n' +
      '--XyZ\r\nContent-Disposition: form-data; name="empty"\r\n\r\n\r\n' +
      '--XyZ--\r\n',
  );
  const parts = parseMultipart(body, multipartBoundary('multipart/form-data; boundary="XyZ"'), { maxParts: 5 });
  assert.deepEqual(
    parts.map((p) => [p.name, p.data.toString()]),
    [
      ['a', '1'],
      ['empty', ''],
    ],
  );
});

test('refusals name the problem', () => {
  const part = (name: string) => `--B\r\nContent-Disposition: form-data; name="${name}"\r\n\r\nv\r\n`;
  assert.throws(() => multipartBoundary('multipart/form-data'), status(400, /no boundary/));
  assert.throws(
    () => multipartBoundary(`multipart/form-data; boundary=${'x'.repeat(71)}`),
    status(400, /71 characters/),
  );
  assert.throws(
    () => parseMultipart(Buffer.from(`${part('a')}--B--`), 'Q', { maxParts: 5 }),
    status(400, /does not occur/),
  );
  assert.throws(
    () => parseMultipart(Buffer.from(`${part('a') + part('b') + part('c')}--B--`), 'B', { maxParts: 2 }),
    status(400, /more than 2 parts/),
  );
  assert.throws(
    () =>
      parseMultipart(Buffer.from('--B\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue without end'), 'B', {
        maxParts: 5,
      }),
    status(400, /not closed by a boundary/),
  );
  assert.throws(
    () =>
      parseMultipart(Buffer.from(`--B\r\nX-Long: ${'y'.repeat(100)}\r\n\r\nv\r\n--B--`), 'B', {
        maxParts: 5,
        maxHeaderBytes: 50,
      }),
    status(400, /more than 50 bytes of headers/),
  );
  assert.throws(
    () => parseMultipart(Buffer.from('--B\r\nContent-Type: text/plain\r\n\r\nv\r\n--B--'), 'B', { maxParts: 5 }),
    status(400, /no 'Content-Disposition: form-data'/),
  );
  assert.throws(
    () => parseMultipart(Buffer.from('--B\r\nContent-Disposition: form-data\r\n\r\nv\r\n--B--'), 'B', { maxParts: 5 }),
    status(400, /no field name/),
  );
  assert.throws(
    () => parseMultipart(Buffer.from('--Bjunk'), 'B', { maxParts: 5 }),
    status(400, /not followed by a line break/),
  );
});
