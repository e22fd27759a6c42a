/**
 * `npm run bench -- parser-bombs`: time and memory to refuse the probe's two amplification files:
 * a .pth whose data.pkl is 2^24 MEMOIZE ops deflated to a few KB, and a deflated tensor record
 * of zeros (64 MiB, or --mb N) packed to a few hundred KB; also the MEMOIZE stream stored
 * (16 MB file), which the memo bound refuses. Memory is the growth of the process's
 * resident set and of the JS heap across the refusal.
 */
import { mkdtempSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { TorchCheckpoint } from '../src/io/torch/checkpoint.js';
import { PickleBytes, checkpointPickle, torchArchive, zipArchive } from '../test/io/torch-test-writer.js';
import type { BenchResult } from './main.js';
import { option } from './options.js';

async function refusal(
  path: string,
): Promise<{ fileBytes: number; ms: number; rssGrowthMb: number; heapGrowthMb: number; message: string }> {
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  let message = 'accepted';
  try {
    const ckpt = await TorchCheckpoint.open(path);
    for (const key of ckpt.keys()) await ckpt.read(key);
    await ckpt.close();
  } catch (error) {
    message = (error as Error).message;
  }
  const ms = performance.now() - t0;
  const mb = (v: number) => Math.round((v / 1024 / 1024) * 10) / 10;
  return {
    fileBytes: statSync(path).size,
    ms: Math.round(ms * 10) / 10,
    rssGrowthMb: mb(process.memoryUsage().rss - rss0),
    heapGrowthMb: mb(process.memoryUsage().heapUsed - heap0),
    message: message.slice(0, 200),
  };
}

export async function run(argv: string[]): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ape-bombs-'));
  try {
    const head = new PickleBytes().proto(4).binunicode('x').bytes();
    const memo = new Uint8Array(head.length + (1 << 24) + 1).fill(0x94);
    memo.set(head);
    memo[memo.length - 1] = 0x2e;
    const memoPath = join(dir, 'memo.pth');
    writeFileSync(memoPath, zipArchive([{ name: 'archive/data.pkl', data: memo, deflate: true }]));
    const memoResult = await refusal(memoPath);
    console.log(
      `MEMOIZE x 2^24 (${memoResult.fileBytes} bytes): refused in ${memoResult.ms} ms, RSS +${memoResult.rssGrowthMb} MB, heap +${memoResult.heapGrowthMb} MB: ${memoResult.message}`,
    );

    const storedPath = join(dir, 'memo-stored.pth');
    writeFileSync(storedPath, zipArchive([{ name: 'archive/data.pkl', data: memo }]));
    const storedResult = await refusal(storedPath);
    console.log(
      `MEMOIZE x 2^24 stored (${storedResult.fileBytes} bytes): refused in ${storedResult.ms} ms, RSS +${storedResult.rssGrowthMb} MB, heap +${storedResult.heapGrowthMb} MB: ${storedResult.message}`,
    );

    const mb = Number(option(argv, '--mb', '64'));
    const zeros = new Uint8Array(mb * 1024 * 1024);
    const pkl = checkpointPickle({
      w: { storage: '0', storageType: 'FloatStorage', numel: zeros.length / 4, shape: [zeros.length / 4] },
    });
    const bombPath = join(dir, 'bomb.pth');
    writeFileSync(bombPath, torchArchive(pkl, { '0': zeros }, { deflate: true }));
    const bombResult = await refusal(bombPath);
    console.log(
      `deflate bomb ${mb} MiB of zeros (${bombResult.fileBytes} bytes): refused in ${bombResult.ms} ms, RSS +${bombResult.rssGrowthMb} MB, heap +${bombResult.heapGrowthMb} MB: ${bombResult.message}`,
    );
    return {
      results: {
        memoize: memoResult,
        memoizeStored: storedResult,
        deflateBomb: { inflatedMb: mb, ...bombResult },
        machine: { cpus: cpus().length, loadavg1: loadavg()[0] },
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
