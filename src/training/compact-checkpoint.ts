import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { checkpointName, loadCheckpoint, loadLatestCheckpoint, saveCheckpoint } from './checkpoint.js';
import { updateDirectionError } from './optim/compact-moments.js';

/** What converting a checkpoint to the compact format did. */
export interface CompactedCheckpoint {
  from: string;
  path: string;
  step: number;
  bytesBefore: number;
  bytesAfter: number;
  /** Relative L2 change of the update direction m / sqrt(v), read back from the written file. */
  directionError: number;
}

/**
 * Writes `from` (a checkpoint file, or a checkpoints folder: its newest usable file, a damaged
 * newer one passed over with a line through `log`) into `outDir` under the same file name, with
 * the moments in 8-bit codes; weights, extras and run state are copied unchanged. The new file is
 * written atomically with its checksums and read back to check them. Refuses a checkpoint that is
 * already compact and a target file that exists.
 */
export async function compactCheckpoint(
  from: string,
  outDir: string,
  log: (line: string) => void = console.error,
): Promise<CompactedCheckpoint> {
  if (!existsSync(from)) throw new Error(`${from}: no such checkpoint file or folder`);
  let path = from;
  const checkpoint = statSync(from).isDirectory()
    ? await loadLatestCheckpoint(from, log).then((latest) => {
        if (!latest) throw new Error(`${from}: no checkpoint files (step-N.safetensors) in this folder`);
        path = latest.path;
        return latest.checkpoint;
      })
    : await loadCheckpoint(from);
  if (checkpoint.format === 'compact') throw new Error(`${path}: already a compact checkpoint`);
  const target = join(outDir, checkpointName(checkpoint.step));
  if (existsSync(target)) throw new Error(`${target} exists; remove it or choose another output folder`);
  const written = await saveCheckpoint(outDir, checkpoint, Number.MAX_SAFE_INTEGER, 'compact');
  const back = await loadCheckpoint(written);
  return {
    from: path,
    path: written,
    step: checkpoint.step,
    bytesBefore: statSync(path).size,
    bytesAfter: statSync(written).size,
    directionError: updateDirectionError(checkpoint.optimizer.moments, back.optimizer.moments),
  };
}
