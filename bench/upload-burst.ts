/**
 * `npm run bench -- upload-burst [--model DIR] [--side 5000] [--burst 8]`: the probe's cheap
 * uploads. Starts `ape serve` (from the sources, default model), measures the server process's
 * resident memory (VmRSS) at rest, sends a burst of N concurrent all-zero side x side PNGs (a
 * few tens of KB each, 25 M pixels at 5000), and reads the memory again at the burst's peak
 * (sampled every 100 ms), right after the last answer and 5 s later. Each answer's status and
 * time are recorded. Before the fix such a burst took 28 s of model time per image and left
 * 815 MB resident.
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import sharp from 'sharp';
import { startServer } from '../test/server/server-process.js';
import type { BenchResult } from './main.js';
import { option } from './options.js';

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return Math.round(kb / 1024);
}

export async function run(argv: string[]): Promise<BenchResult> {
  const side = Number(option(argv, '--side', '5000'));
  const burst = Number(option(argv, '--burst', '8'));
  const modelArgs = argv.includes('--model') ? ['--model', option(argv, '--model', '')] : [];
  const png = await sharp({ create: { width: side, height: side, channels: 3, background: { r: 0, g: 0, b: 0 } } })
    .png({ compressionLevel: 9 })
    .toBuffer();
  // The pixel budget is raised to the upload's size: the default (4 x the model's input side, squared) refuses it at the header.
  const server = await startServer(
    [...modelArgs, '--queue', String(burst), '--max-pixels', String(side * side)],
    180_000,
  );
  try {
    const pid = server.pid;
    const send = async () => {
      const form = new FormData();
      form.append('image', new Blob([new Uint8Array(png)]), 'zeros.png');
      form.append('vocabulary', 'circle,square,triangle,star,sky,grass,water');
      const t0 = performance.now();
      const answer = await fetch(new URL('/v1/predict', server.url), { method: 'POST', body: form });
      const body = (await answer.json()) as { instances?: unknown[]; timing?: Record<string, number> };
      return {
        status: answer.status,
        ms: Math.round(performance.now() - t0),
        instances: body.instances?.length ?? null,
        inferenceMs: body.timing?.inferenceMs ?? null,
      };
    };
    // One request first so that lazy allocations (wasm heap, caches) are part of "at rest".
    await send();
    await new Promise((r) => setTimeout(r, 2000));
    const before = rssMb(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 100);
    const t0 = performance.now();
    const answers = await Promise.all(Array.from({ length: burst }, send));
    const burstMs = Math.round(performance.now() - t0);
    clearInterval(sampler);
    const right = rssMb(pid);
    await new Promise((r) => setTimeout(r, 5000));
    const after = rssMb(pid);
    console.log(
      `PNG ${side}x${side}: ${png.length} bytes; burst of ${burst} answered in ${burstMs} ms: ${answers.map((a) => `${a.status} ${a.ms} ms (model ${a.inferenceMs} ms, ${a.instances} instances)`).join('; ')}`,
    );
    console.log(
      `server RSS: ${before} MB at rest, peak ${peak} MB, ${right} MB after the burst, ${after} MB 5 s later`,
    );
    return {
      results: {
        side,
        pngBytes: png.length,
        burst,
        burstMs,
        answers,
        rssMb: { before, peak, afterBurst: right, after5s: after },
        machine: { cpus: cpus().length, loadavg1: loadavg()[0] },
      },
    };
  } finally {
    await server.stop();
  }
}
