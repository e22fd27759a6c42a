/** Shared setup of the annotate tests: a few small images, one of them broken, and a runner. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeSynthDataset } from '../../src/data/synth/write-dataset.js';
import { repoRoot } from '../cli/ape-cli.js';

export const VOCAB = 'circle,square,triangle,star';

/** A folder `images/` of four 128x128 synthetic scenes and, third in order, a PNG that is not one. */
export async function makeImageFolder(): Promise<{ root: string; images: string }> {
  const root = mkdtempSync(join(tmpdir(), 'ape-annotate-'));
  await writeSynthDataset(join(root, 'synth'), {
    images: 4,
    seed: 11,
    size: 128,
    config: { minObjects: 2, maxObjects: 4 },
  });
  const images = join(root, 'synth', 'images');
  // A PNG signature and then garbage: sniffed as PNG, refused by the decoder.
  writeFileSync(
    join(images, '000001b.png'),
    Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(64, 7)]),
  );
  return { root, images };
}

/** A running `ape` process (from source) whose output is collected. */
export interface ApeProcess {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}

/** Starts `ape ARGS` in its own process group, so a test can kill it with its model processes. */
export function startApe(args: string[]): ApeProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: repoRoot,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, output: () => text, exit };
}

/** SIGKILLs a started process and everything in its process group. */
export function killGroup(p: ApeProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-p.child.pid!, signal);
  } catch {
    // already gone
  }
}

/** Waits until `ready()` holds, checking every 100 ms; fails after `timeoutMs`. */
export async function waitUntil(ready: () => boolean, what: string, timeoutMs = 120_000): Promise<void> {
  const t0 = Date.now();
  while (!ready()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Images recorded in a run's journal (lines after the header). */
export function journalEntries(outDir: string): number {
  try {
    return readFileSync(join(outDir, 'journal.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{"i"')).length;
  } catch {
    return 0;
  }
}
