import { mkdirSync, openSync, fsyncSync, closeSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
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

/** The file name of the checkpoint of step `step`; zero-padded so names sort by step. */
export function checkpointName(step: number): string {
  return `step-${String(step).padStart(9, '0')}.safetensors`;
}

/**
 * Writes one checkpoint as a single safetensors file: written to a temporary name, fsynced,
 * renamed into place, and the folder fsynced, so a crash at any point leaves either the previous
 * checkpoints only or the new one complete. Afterwards all but the newest `keep` are removed.
 */
export async function saveCheckpoint(dir: string, checkpoint: TrainingCheckpoint, keep = 3): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, SafetensorsInput>();
  for (const [name, p] of checkpoint.params) tensors.set(`model.${name}`, { dtype: 'F32', shape: p.shape, data: p.data });
  for (const [name, mv] of checkpoint.optimizer.moments) {
    const shape = checkpoint.params.get(name)?.shape ?? [mv.m.length];
    tensors.set(`optim.m.${name}`, { dtype: 'F32', shape, data: mv.m });
    tensors.set(`optim.v.${name}`, { dtype: 'F32', shape, data: mv.v });
  }
  for (const [name, e] of checkpoint.extras) tensors.set(`extra.${name}`, { dtype: 'F32', shape: e.shape, data: e.data });
  const metadata = {
    format: CHECKPOINT_FORMAT,
    step: String(checkpoint.step),
    optimizer: JSON.stringify({ step: checkpoint.optimizer.step, paramSteps: checkpoint.optimizerParamSteps }),
    state: JSON.stringify(checkpoint.state),
  };
  const path = join(dir, checkpointName(checkpoint.step));
  await writeSafetensorsFile(path, tensors, metadata);
  syncDirectory(dir);
  for (const old of listCheckpoints(dir).slice(0, -Math.max(1, keep))) rmSync(join(dir, old.file), { force: true });
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

export async function loadCheckpoint(path: string): Promise<TrainingCheckpoint> {
  const file = await readSafetensorsFile(path);
  if (file.metadata.format !== CHECKPOINT_FORMAT) throw new Error(`${path}: not a training checkpoint (format '${file.metadata.format ?? ''}')`);
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

/**
 * The newest checkpoint in `dir` that reads back whole, or null when there is none. A newest file
 * that fails to read (a disk fault; interrupted writes never get the final name) is reported
 * through `warn` and the previous one is tried.
 */
export async function loadLatestCheckpoint(dir: string, warn: (message: string) => void = console.warn): Promise<TrainingCheckpoint | null> {
  const all = listCheckpoints(dir);
  for (let i = all.length - 1; i >= 0; i--) {
    const path = join(dir, all[i]!.file);
    try {
      return await loadCheckpoint(path);
    } catch (err) {
      warn(`skipping unreadable checkpoint ${path}: ${(err as Error).message}`);
    }
  }
  return null;
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
