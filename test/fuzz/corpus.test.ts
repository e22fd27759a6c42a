/**
 * Replays the hostile inputs of corpus.json (the adversarial probe of issue 17) against the
 * parsers they target. Each case must be answered as recorded, within its time limit.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parsePredictRequest } from '../../src/server/predict-request.js';
import { HttpError } from '../../src/server/http-error.js';
import { DEFAULT_LIMITS } from '../../src/server/limits.js';
import { clipCleanText } from '../../src/text/text-cleaning.js';
import { unpickle, PickleRefusedError } from '../../src/io/torch/pickle.js';
import { TorchCheckpoint } from '../../src/io/torch/checkpoint.js';
import { ZipArchive } from '../../src/io/torch/zip-archive.js';
import { parseCocoGroundTruth, parseCocoResults } from '../../src/evaluation/coco/parse.js';
import type { CocoDataset } from '../../src/evaluation/coco/types.js';
import { readRegularFile } from '../../src/io/bounded-file.js';
import { zipArchive } from '../io/torch-test-writer.js';

type Text = string | Array<string | { repeat: string; times: number }>;
interface Bytes {
  hex?: string;
  repeatHex?: string;
  times?: number;
  tailHex?: string;
}
interface Case {
  name: string;
  target: string;
  body?: unknown;
  text?: Text;
  bytes?: Bytes;
  entries?: Array<{ name: string; deflate?: boolean; bytes: Bytes }>;
  read?: string;
  file?: 'fifo' | 'dev-zero-link';
  expect: { status?: number; code?: string; error?: string; equals?: string };
}

const here = fileURLToPath(new URL('.', import.meta.url));
const corpus = JSON.parse(readFileSync(join(here, 'corpus.json'), 'utf8')) as { cases: Case[] };
const scratch = mkdtempSync(join(tmpdir(), 'ape-fuzz-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const text = (t: Text): string =>
  typeof t === 'string' ? t : t.map((p) => (typeof p === 'string' ? p : p.repeat.repeat(p.times))).join('');

/** A JSON body whose string values (or lists of parts) are expanded. */
function expand(value: unknown): unknown {
  if (Array.isArray(value) && value.some((v) => typeof v === 'object' && v !== null && 'repeat' in v))
    return text(value as Text);
  if (Array.isArray(value)) return value.map(expand);
  if (typeof value === 'object' && value !== null)
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v)]));
  return value;
}

function bytes(spec: Bytes): Uint8Array {
  const head = Buffer.from(spec.hex ?? '', 'hex');
  const unit = Buffer.from(spec.repeatHex ?? '', 'hex');
  const tail = Buffer.from(spec.tailHex ?? '', 'hex');
  const out = new Uint8Array(head.length + unit.length * (spec.times ?? 0) + tail.length);
  out.set(head);
  if (unit.length === 1) out.fill(unit[0]!, head.length, out.length - tail.length);
  else for (let i = 0; i < (spec.times ?? 0); i++) out.set(unit, head.length + i * unit.length);
  out.set(tail, out.length - tail.length);
  return out;
}

async function outcome(c: Case): Promise<{ status?: number; code?: string; error?: string; value?: unknown }> {
  try {
    switch (c.target) {
      case 'predict-json':
        parsePredictRequest(Buffer.from(JSON.stringify(expand(c.body))), 'application/json', DEFAULT_LIMITS);
        return { status: 200 };
      case 'predict-multipart':
        parsePredictRequest(Buffer.from(text(c.body as Text)), 'multipart/form-data; boundary=b', DEFAULT_LIMITS);
        return { status: 200 };
      case 'clip-clean':
        return { value: clipCleanText(text(c.text!)) };
      case 'pickle':
        return {
          value: unpickle(bytes(c.bytes!), {
            findGlobal(module, name) {
              throw new PickleRefusedError(`${module}.${name}`);
            },
          }),
        };
      case 'torch-zip': {
        const path = join(scratch, `${c.name.replace(/[^a-z0-9]+/gi, '-')}.pth`);
        writeFileSync(
          path,
          zipArchive(c.entries!.map((e) => ({ name: e.name, data: bytes(e.bytes), deflate: e.deflate }))),
        );
        if (c.read) {
          const zip = await ZipArchive.open(path);
          try {
            return { value: await zip.read(c.read, 1 << 30) };
          } finally {
            await zip.close();
          }
        }
        const ckpt = await TorchCheckpoint.open(path);
        await ckpt.close();
        return { value: 'opened' };
      }
      case 'coco-gt':
        return { value: parseCocoGroundTruth(text(c.text!), 'gt.json') };
      case 'coco-results':
        return {
          value: parseCocoResults(
            text(c.text!),
            { images: [], annotations: [], categories: [] } as unknown as CocoDataset,
            'res.json',
          ),
        };
      case 'file': {
        const path = join(scratch, c.file!);
        if (c.file === 'fifo') execFileSync('mkfifo', [path]);
        else symlinkSync('/dev/zero', path);
        return { value: await readRegularFile(path, 1 << 20) };
      }
      default:
        throw new Error(`corpus case '${c.name}': unknown target '${c.target}'`);
    }
  } catch (error) {
    if (error instanceof HttpError) return { status: error.status, code: error.code, error: error.message };
    return { error: (error as Error).message };
  }
}

for (const c of corpus.cases) {
  test(`corpus: ${c.name}`, { timeout: 30_000 }, async () => {
    const got = await outcome(c);
    if (c.expect.status !== undefined) assert.equal(got.status, c.expect.status, JSON.stringify(got).slice(0, 300));
    if (c.expect.code !== undefined) assert.equal(got.code, c.expect.code, got.error);
    if (c.expect.error !== undefined)
      assert.ok(
        got.error?.includes(c.expect.error),
        `expected an error with '${c.expect.error}', got ${JSON.stringify(got).slice(0, 300)}`,
      );
    if (c.expect.equals !== undefined) assert.equal(got.value, c.expect.equals);
  });
}
