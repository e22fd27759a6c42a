import { mkdirSync, openSync, fsyncSync, closeSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { readSafetensorsFile, writeSafetensorsFile } from '../io/safetensors-node.js';
import { toFloat32, type SafetensorsInput } from '../io/safetensors.js';
import type { AdamWState } from './optim/adamw.js';

/** Format tag in every training checkpoint's metadata. */
export const CHECKPOINT_FORMAT = 'ape-train-checkpoint-v1';

/** Everything a run needs to continue exactly where it stopped. */
export interface TrainingCheckpoint {
  step: number;
  /** Model parameters by name. */
  params: Map<string, { shape: number[]; data: Float32Array }>;
  optimizer: AdamWState;
  /** Per-parameter optimizer step counts. */
  optimizerParamSteps: Record<string, number>;
  /** Extra tensors (e.g. the negative bank's embeddings), by name. */
  extras: Map<string, { shape: number[]; data: Float32Array }>;
  /** JSON-able run state: sampler cursors, generator states, bank texts, config fingerprint. */
  state: Record<string, unknown>;
}

/** CRC-32 of a tensor's bytes, as 8 hex digits. */
function tensorChecksum(data: Float32Array): string {
  return (crc32(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) >>> 0).toString(16).padStart(8, '0');
}

/** The file name of the checkpoint of step `step`; zero-padded so names sort by step. */
export function checkpointName(step: number): string {
  return `step-${String(step).padStart(9, '0')}.safetensors`;
}

/**
 * Writes one checkpoint as a single safetensors file: written to a temporary name, fsynced,
 * renamed into place, and the folder fsynced, so a crash at any point leaves either the previous
 * checkpoints only or the new one complete. The metadata holds a CRC-32 of every tensor, checked
 * on load. Afterwards older checkpoints are pruned so that `keep` remain up to this one; files of
 * later steps (not this run's: damaged or foreign) are never what pruning keeps instead of it.
 */
export async function saveCheckpoint(dir: string, checkpoint: TrainingCheckpoint, keep = 3): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, SafetensorsInput>();
  for (const [name, p] of checkpoint.params)
    tensors.set(`model.${name}`, { dtype: 'F32', shape: p.shape, data: p.data });
  for (const [name, mv] of checkpoint.optimizer.moments) {
    const shape = checkpoint.params.get(name)?.shape ?? [mv.m.length];
    tensors.set(`optim.m.${name}`, { dtype: 'F32', shape, data: mv.m });
    tensors.set(`optim.v.${name}`, { dtype: 'F32', shape, data: mv.v });
  }
  for (const [name, e] of checkpoint.extras)
    tensors.set(`extra.${name}`, { dtype: 'F32', shape: e.shape, data: e.data });
  const metadata = {
    format: CHECKPOINT_FORMAT,
    step: String(checkpoint.step),
    optimizer: JSON.stringify({ step: checkpoint.optimizer.step, paramSteps: checkpoint.optimizerParamSteps }),
    state: JSON.stringify(checkpoint.state),
    checksums: JSON.stringify(
      Object.fromEntries([...tensors].map(([name, t]) => [name, tensorChecksum(t.data as Float32Array)])),
    ),
  };
  const path = join(dir, checkpointName(checkpoint.step));
  await writeSafetensorsFile(path, tensors, metadata);
  syncDirectory(dir);
  const older = listCheckpoints(dir).filter((c) => c.step < checkpoint.step);
  for (const old of older.slice(0, Math.max(0, older.length - (Math.max(1, keep) - 1))))
    rmSync(join(dir, old.file), { force: true });
  return path;
}

/** Checkpoint files in `dir`, oldest first (temporary files of interrupted writes are ignored). */
export function listCheckpoints(dir: string): Array<{ step: number; file: string }> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .map((file) => ({ file, m: /^step-(\d+)\.safetensors$/.exec(file) }))
    .filter((x): x is { file: string; m: RegExpExecArray } => x.m !== null)
    .map(({ file, m }) => ({ step: Number(m[1]), file }))
    .sort((a, b) => a.step - b.step);
}

/**
 * Reads a checkpoint and checks every tensor against the CRC-32 in its metadata (checkpoints
 * written before checksums were kept have none and load unchecked).
 */
export async function loadCheckpoint(path: string): Promise<TrainingCheckpoint> {
  const file = await readSafetensorsFile(path);
  if (file.metadata.format !== CHECKPOINT_FORMAT)
    throw new Error(`${path}: not a training checkpoint (format '${file.metadata.format ?? ''}')`);
  if (file.metadata.checksums !== undefined) verifyChecksums(path, file.metadata.checksums, file.tensors);
  const params = new Map<string, { shape: number[]; data: Float32Array }>();
  const extras = new Map<string, { shape: number[]; data: Float32Array }>();
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const [name, entry] of file.tensors) {
    const value = { shape: entry.shape, data: toFloat32(entry) };
    if (name.startsWith('model.')) params.set(name.slice(6), value);
    else if (name.startsWith('optim.m.')) m.set(name.slice(8), value.data);
    else if (name.startsWith('optim.v.')) v.set(name.slice(8), value.data);
    else if (name.startsWith('extra.')) extras.set(name.slice(6), value);
  }
  const moments = new Map<string, { m: Float32Array; v: Float32Array }>();
  for (const [name, mm] of m) {
    const vv = v.get(name);
    if (!vv) throw new Error(`${path}: optimizer state for '${name}' has m but no v`);
    moments.set(name, { m: mm, v: vv });
  }
  let optimizerMeta: { step: number; paramSteps: Record<string, number> };
  let state: Record<string, unknown>;
  try {
    optimizerMeta = JSON.parse(file.metadata.optimizer ?? '') as typeof optimizerMeta;
    state = JSON.parse(file.metadata.state ?? '') as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${path}: unreadable run state in the metadata (${(err as Error).message})`);
  }
  return {
    step: Number(file.metadata.step),
    params,
    optimizer: { step: optimizerMeta.step, moments },
    optimizerParamSteps: optimizerMeta.paramSteps,
    extras,
    state,
  };
}

function verifyChecksums(path: string, text: string, tensors: Map<string, { data: unknown }>): void {
  let expected: Record<string, string>;
  try {
    expected = JSON.parse(text) as Record<string, string>;
  } catch (err) {
    throw new Error(`${path}: unreadable checksums in the metadata (${(err as Error).message})`);
  }
  for (const [name, entry] of tensors) {
    const want = expected[name];
    if (want === undefined) throw new Error(`${path}: tensor '${name}' has no checksum in the metadata`);
    const got = tensorChecksum(entry.data as Float32Array);
    if (got !== want)
      throw new Error(
        `${path}: tensor '${name}' fails its checksum (CRC-32 ${got}, written as ${want}): the file was altered or damaged`,
      );
  }
  for (const name of Object.keys(expected))
    if (!tensors.has(name)) throw new Error(`${path}: tensor '${name}' is missing`);
}

/** A checkpoint file that could not be used, and why. */
export interface UnreadableCheckpoint {
  file: string;
  reason: string;
}

/** The newest usable checkpoint of a folder, and the newer files passed over to reach it. */
export interface LatestCheckpoint {
  checkpoint: TrainingCheckpoint;
  path: string;
  skipped: UnreadableCheckpoint[];
}

/** Every checkpoint file of a run folder exists but none can be used. */
export class NoReadableCheckpointError extends Error {
  override name = 'NoReadableCheckpointError';
  constructor(
    readonly dir: string,
    readonly unreadable: UnreadableCheckpoint[],
  ) {
    super(
      `none of the ${unreadable.length} checkpoints in ${dir} can be read:\n` +
        unreadable.map((u) => `  ${u.file}: ${u.reason}`).join('\n') +
        `\nrepair or move them to resume, or pass --restart to start a new run (the old checkpoints and model folder are kept aside, renamed)`,
    );
  }
}

/**
 * The newest checkpoint in `dir` that reads back whole and passes its checksums, or null when the
 * folder holds no checkpoint file. A newest file that fails (a disk fault, an altered file;
 * interrupted writes never get the final name) is reported through `warn` and the previous one
 * is tried; when every one fails, NoReadableCheckpointError names them all.
 */
export async function loadLatestCheckpoint(
  dir: string,
  warn: (message: string) => void = console.warn,
): Promise<LatestCheckpoint | null> {
  const all = listCheckpoints(dir);
  const skipped: UnreadableCheckpoint[] = [];
  for (let i = all.length - 1; i >= 0; i--) {
    const path = join(dir, all[i]!.file);
    try {
      const checkpoint = await loadCheckpoint(path);
      if (skipped.length > 0)
        warn(
          `falling back to checkpoint ${path} (step ${checkpoint.step}): the newer ${skipped.map((s) => s.file).join(', ')} cannot be used`,
        );
      return { checkpoint, path, skipped };
    } catch (err) {
      const reason = (err as Error).message.replace(`${path}: `, '');
      skipped.push({ file: all[i]!.file, reason });
      warn(`checkpoint ${path} cannot be used: ${reason}`);
    }
  }
  if (skipped.length > 0) throw new NoReadableCheckpointError(dir, skipped);
  return null;
}

/** Removes temporary files (`*.tmp`) that interrupted atomic writes left in `dir`; returns their names. */
export function removeLeftoverTemporaries(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const leftovers = names.filter((name) => name.endsWith('.tmp'));
  for (const name of leftovers) rmSync(join(dir, name), { force: true });
  return leftovers;
}

function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on folders; the rename itself is still atomic there.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
