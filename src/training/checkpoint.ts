import { mkdirSync, openSync, fsyncSync, closeSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { readSafetensorsFile, writeSafetensorsFile } from '../io/safetensors-node.js';
import { toFloat32, type SafetensorsInput, type TensorData } from '../io/safetensors.js';
import type { AdamWState } from './optim/adamw.js';
import { decodeMoments, encodeMoments, momentBlocks } from './optim/compact-moments.js';

/** Format tag in every training checkpoint's metadata. */
export const CHECKPOINT_FORMAT = 'ape-train-checkpoint-v1';

/**
 * How a checkpoint stores the AdamW moments (weights are always float32): `full` as float32,
 * `compact` as 8-bit codes with per-block scales (optim/compact-moments.ts), half the file.
 */
export type CheckpointFormat = 'full' | 'compact';

/** The metadata's `moments` value per format (absent: float32, as in checkpoints before compact ones). */
const MOMENT_ENCODING: Record<CheckpointFormat, string> = { full: 'f32', compact: 'q8-block' };

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
  /** How the file stored the moments (set by loadCheckpoint; saving takes the format as an argument). */
  format?: CheckpointFormat;
}

/** CRC-32 of a tensor's bytes, as 8 hex digits. */
function tensorChecksum(data: TensorData): string {
  return (crc32(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) >>> 0).toString(16).padStart(8, '0');
}

/** The file name of the checkpoint of step `step`; zero-padded so names sort by step. */
export function checkpointName(step: number): string {
  return `step-${String(step).padStart(9, '0')}.safetensors`;
}

/**
 * Writes one checkpoint as a single safetensors file: written to a temporary name, fsynced,
 * renamed into place, and the folder fsynced, so a crash at any point leaves either the previous
 * checkpoints only or the new one complete. The metadata holds a CRC-32 of every tensor (of the
 * bytes stored, codes and scales for compact moments), checked on load. Afterwards older
 * checkpoints are pruned so that `keep` remain up to this one; files of later steps (not this
 * run's: damaged or foreign) are never what pruning keeps instead of it.
 */
export async function saveCheckpoint(
  dir: string,
  checkpoint: TrainingCheckpoint,
  keep = 3,
  format: CheckpointFormat = 'full',
): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, SafetensorsInput & { data: TensorData }>();
  for (const [name, p] of checkpoint.params)
    tensors.set(`model.${name}`, { dtype: 'F32', shape: p.shape, data: p.data });
  for (const [name, mv] of checkpoint.optimizer.moments) {
    const shape = checkpoint.params.get(name)?.shape ?? [mv.m.length];
    if (format === 'full') {
      tensors.set(`optim.m.${name}`, { dtype: 'F32', shape, data: mv.m });
      tensors.set(`optim.v.${name}`, { dtype: 'F32', shape, data: mv.v });
      continue;
    }
    const c = encodeMoments(mv.m, mv.v, name);
    const blocks = momentBlocks(mv.m.length);
    tensors.set(`optim.v8.${name}`, { dtype: 'U8', shape, data: c.vCodes });
    tensors.set(`optim.v8range.${name}`, { dtype: 'F32', shape: [blocks, 2], data: c.vRanges });
    tensors.set(`optim.r8.${name}`, { dtype: 'I8', shape, data: c.rCodes });
    tensors.set(`optim.r8scale.${name}`, { dtype: 'F32', shape: [blocks], data: c.rScales });
  }
  for (const [name, e] of checkpoint.extras)
    tensors.set(`extra.${name}`, { dtype: 'F32', shape: e.shape, data: e.data });
  const metadata = {
    format: CHECKPOINT_FORMAT,
    moments: MOMENT_ENCODING[format],
    step: String(checkpoint.step),
    optimizer: JSON.stringify({ step: checkpoint.optimizer.step, paramSteps: checkpoint.optimizerParamSteps }),
    state: JSON.stringify(checkpoint.state),
    checksums: JSON.stringify(Object.fromEntries([...tensors].map(([name, t]) => [name, tensorChecksum(t.data)]))),
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
  const encoding = file.metadata.moments ?? MOMENT_ENCODING.full;
  const format = (Object.keys(MOMENT_ENCODING) as CheckpointFormat[]).find((f) => MOMENT_ENCODING[f] === encoding);
  if (format === undefined)
    throw new Error(
      `${path}: unknown optimizer-moment encoding '${encoding}' (known: ${Object.values(MOMENT_ENCODING).join(', ')})`,
    );
  if (file.metadata.checksums !== undefined) verifyChecksums(path, file.metadata.checksums, file.tensors);
  const params = new Map<string, { shape: number[]; data: Float32Array }>();
  const extras = new Map<string, { shape: number[]; data: Float32Array }>();
  const optim = new Map<string, TensorData>();
  for (const [name, entry] of file.tensors) {
    if (name.startsWith('model.')) params.set(name.slice(6), { shape: entry.shape, data: toFloat32(entry) });
    else if (name.startsWith('extra.')) extras.set(name.slice(6), { shape: entry.shape, data: toFloat32(entry) });
    else if (name.startsWith('optim.')) optim.set(name.slice(6), entry.data);
  }
  const moments = format === 'full' ? fullMoments(path, optim) : compactMoments(path, optim);
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
    format,
  };
}

type Moments = Map<string, { m: Float32Array; v: Float32Array }>;

/** Moments stored as `m.<name>` and `v.<name>` float32 tensors. */
function fullMoments(path: string, optim: Map<string, TensorData>): Moments {
  const moments: Moments = new Map();
  for (const [key, m] of optim) {
    if (!key.startsWith('m.')) continue;
    const name = key.slice(2);
    const v = optim.get(`v.${name}`);
    if (!v) throw new Error(`${path}: optimizer state for '${name}' has m but no v`);
    moments.set(name, { m: toFloat32({ data: m }), v: toFloat32({ data: v }) });
  }
  return moments;
}

/** Moments stored as 8-bit codes: `v8.<name>` with `v8range.<name>`, `r8.<name>` with `r8scale.<name>`. */
function compactMoments(path: string, optim: Map<string, TensorData>): Moments {
  const moments: Moments = new Map();
  for (const [key, vCodes] of optim) {
    if (!key.startsWith('v8.')) continue;
    const name = key.slice(3);
    const parts = ['v8range', 'r8', 'r8scale'].map((part) => optim.get(`${part}.${name}`));
    const [vRanges, rCodes, rScales] = parts;
    if (!(vCodes instanceof Uint8Array && vRanges instanceof Float32Array))
      throw new Error(`${path}: the 8-bit second moment of '${name}' is not U8 codes with F32 ranges`);
    if (!(rCodes instanceof Int8Array && rScales instanceof Float32Array))
      throw new Error(`${path}: the 8-bit first moment of '${name}' is missing or not I8 codes with F32 scales`);
    moments.set(name, decodeMoments({ vCodes, vRanges, rCodes, rScales }, `${path}: optimizer state for '${name}'`));
  }
  return moments;
}

function verifyChecksums(path: string, text: string, tensors: Map<string, { data: TensorData }>): void {
  let expected: Record<string, string>;
  try {
    expected = JSON.parse(text) as Record<string, string>;
  } catch (err) {
    throw new Error(`${path}: unreadable checksums in the metadata (${(err as Error).message})`);
  }
  for (const [name, entry] of tensors) {
    const want = expected[name];
    if (want === undefined) throw new Error(`${path}: tensor '${name}' has no checksum in the metadata`);
    const got = tensorChecksum(entry.data);
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
