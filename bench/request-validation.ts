/**
 * `npm run bench -- request-validation [--mb 20]`: time to refuse a JSON predict body whose
 * `image` field is a run of whitespace ended by one invalid character (the shape that made the
 * old base64 regular expression backtrack quadratically), at body sizes up to the server's
 * default limit. Also times that old expression on small fields, for the comparison. The server
 * answers these with 400; the whole check runs on the HTTP thread, so its time is how long every
 * other request waits.
 */
import { cpus, loadavg } from 'node:os';
import { parsePredictRequest } from '../src/server/predict-request.js';
import { HttpError } from '../src/server/http-error.js';
import { DEFAULT_LIMITS } from '../src/server/limits.js';
import type { BenchResult } from './main.js';
import { option } from './options.js';

const OLD_BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

function adversarialBody(bytes: number): Buffer {
  return Buffer.from(JSON.stringify({ image: `${' '.repeat(bytes - 40)}!`, vocabulary: ['cat'] }));
}

function timeMs(run: () => void): number {
  const t0 = performance.now();
  run();
  return performance.now() - t0;
}

export async function run(argv: string[]): Promise<BenchResult> {
  const maxMb = Number(option(argv, '--mb', String(DEFAULT_LIMITS.maxRequestBytes / 1024 / 1024)));
  const sizes = [0.0625, 1, 4, maxMb].filter((mb) => mb <= maxMb);
  const refusal: Array<{ bodyMb: number; ms: number; status: number }> = [];
  for (const mb of sizes) {
    const body = adversarialBody(Math.round(mb * 1024 * 1024));
    let status = 0;
    const ms = Math.min(
      ...[0, 1, 2].map(() =>
        timeMs(() => {
          try {
            parsePredictRequest(body, 'application/json', DEFAULT_LIMITS);
          } catch (error) {
            status = error instanceof HttpError ? error.status : -1;
          }
        }),
      ),
    );
    refusal.push({ bodyMb: mb, ms: Math.round(ms * 10) / 10, status });
    console.log(`body ${mb} MB: refused with ${status} in ${ms.toFixed(1)} ms`);
  }
  const oldRegex: Array<{ fieldKb: number; ms: number }> = [];
  for (const kb of [5, 10, 20]) {
    const text = `${' '.repeat(kb * 1024)}!`;
    const ms = timeMs(() => OLD_BASE64.test(text));
    oldRegex.push({ fieldKb: kb, ms: Math.round(ms) });
    console.log(`old regular expression, ${kb} KB field: ${ms.toFixed(0)} ms`);
  }
  return { results: { refusal, oldRegex, machine: { cpus: cpus().length, loadavg1: loadavg()[0] } } };
}
