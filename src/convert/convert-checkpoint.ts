import {
  convertReleasedTensor,
  shapeFits,
  sourceToFloat32,
  type ReleasedLayout,
  type ReleasedTarget,
} from './released-mapping.js';
import { writeSafetensorsStreaming, type StreamedTensorSpec } from '../io/safetensors-stream.js';
import { TorchCheckpoint, type TorchCheckpointOptions, type TorchTensorInfo } from '../io/torch/checkpoint.js';
import { getOrThrow } from '../util/checked.js';

/**
 * Converting a torch checkpoint into a safetensors file of this project's parameter names and
 * layouts, one tensor at a time: the plan (names, layouts, shapes, what is used, unused or
 * missing) is made from the checkpoint's listing alone, checked in full before any data is read,
 * then each tensor is read, re-laid out, written and dropped. Peak memory is a few times the
 * largest single tensor, whatever the checkpoint's size.
 */

export interface ConvertCheckpointOptions extends TorchCheckpointOptions {
  /**
   * The parameters a checkpoint key becomes (name, layout change, and for packed tensors which
   * slice along axis 0); empty for keys this project has no use for.
   */
  targets: (key: string, info: TorchTensorInfo) => ReleasedTarget[];
  /**
   * The model's parameters (name → shape). When given, only these are written, each checked
   * against the converted shape (singleton axes may differ: [1, N, C] fits [N, C]), and any of
   * them the checkpoint lacks is reported missing.
   */
  expected?: ReadonlyMap<string, readonly number[]>;
  /** Stop with an error when an expected parameter is missing (default true). */
  strict?: boolean;
  metadata?: Record<string, string>;
  /** Called after each tensor is written. */
  onTensor?: (done: number, total: number, name: string) => void;
}

export interface ConversionEntry {
  key: string;
  name: string;
  layout: ReleasedLayout;
  part?: { index: number; of: number };
  sourceDtype: string;
  /** Shape in the checkpoint (of the slice, for a part of a packed tensor). */
  sourceShape: number[];
  shape: number[];
}

export interface ConversionReport {
  /** Checkpoint keys written, with their parameter names, in file order of the checkpoint. */
  used: ConversionEntry[];
  /** Checkpoint keys not written (no target, or a target the model does not have). */
  unused: string[];
  /** Expected parameters that no checkpoint key provides. */
  missing: string[];
  /** Top-level checkpoint entries outside the state dict (optimizer, scheduler, ...). */
  skippedTopLevel: string[];
  /** Size of the written file in bytes (0 when nothing was written). */
  bytes: number;
}

export class ConversionError extends Error {
  override name = 'ConversionError';
}

function convertedShape(layout: ReleasedLayout, shape: readonly number[]): number[] {
  if (layout === 'linear') {
    if (shape.length !== 2) throw new ConversionError(`a linear weight must be 2-D, got [${shape.join(', ')}]`);
    return [shape[1]!, shape[0]!];
  }
  if (layout === 'conv') {
    if (shape.length !== 4) throw new ConversionError(`a conv weight must be 4-D, got [${shape.join(', ')}]`);
    return [shape[2]!, shape[3]!, shape[1]!, shape[0]!];
  }
  return [...shape];
}

/** Works out what would be written, without reading tensor data. Throws on shape mismatches and duplicates. */
export function planConversion(
  ckpt: TorchCheckpoint,
  options: ConvertCheckpointOptions,
): { entries: ConversionEntry[]; report: Omit<ConversionReport, 'bytes'> } {
  const entries: ConversionEntry[] = [];
  const unused: string[] = [];
  const byName = new Map<string, string>();
  const problems: string[] = [];
  for (const [key, info] of ckpt.list()) {
    const targets = options.targets(key, info).filter((t) => !options.expected || options.expected.has(t.name));
    if (targets.length === 0) {
      unused.push(key);
      continue;
    }
    for (const t of targets) {
      const prior = byName.get(t.name);
      if (prior !== undefined) {
        problems.push(`parameter '${t.name}' would come from both '${prior}' and '${key}'`);
        continue;
      }
      let sourceShape = [...info.shape];
      if (t.part) {
        const rows = sourceShape[0];
        if (rows === undefined || rows % t.part.of !== 0 || t.part.index < 0 || t.part.index >= t.part.of) {
          problems.push(`${key} [${info.shape.join(', ')}] cannot be split into ${t.part.of} equal parts along axis 0`);
          continue;
        }
        sourceShape = [rows / t.part.of, ...sourceShape.slice(1)];
      }
      let shape: number[];
      try {
        shape = convertedShape(t.layout, sourceShape);
      } catch (err) {
        problems.push(`${key}: ${(err as Error).message}`);
        continue;
      }
      const want = options.expected?.get(t.name);
      if (want) {
        if (!shapeFits(shape, want)) {
          problems.push(
            `${key} [${sourceShape.join(', ')}] (${t.layout} → [${shape.join(', ')}]) does not fit parameter '${t.name}' [${want.join(', ')}]`,
          );
          continue;
        }
        shape = [...want];
      }
      byName.set(t.name, key);
      entries.push({
        key,
        name: t.name,
        layout: t.layout,
        ...(t.part ? { part: t.part } : {}),
        sourceDtype: info.dtype,
        sourceShape,
        shape,
      });
    }
  }
  if (problems.length) {
    throw new ConversionError(
      `${ckpt.path}: ${problems.length} problem(s):\n  ${problems.slice(0, 20).join('\n  ')}${problems.length > 20 ? '\n  ...' : ''}`,
    );
  }
  const missing = options.expected ? [...options.expected.keys()].filter((n) => !byName.has(n)) : [];
  return { entries, report: { used: entries, unused, missing, skippedTopLevel: [...ckpt.skipped] } };
}

/**
 * Writes the planned entries of an open checkpoint to `outPath` as float32 safetensors, reading,
 * re-laying out and writing one tensor at a time. Returns the file size.
 */
export async function writeConversion(
  ckpt: TorchCheckpoint,
  entries: readonly ConversionEntry[],
  outPath: string,
  options: Pick<ConvertCheckpointOptions, 'metadata' | 'onTensor'> = {},
): Promise<number> {
  if (entries.length === 0) throw new ConversionError(`${ckpt.path}: no checkpoint key maps to a model parameter`);
  const byName = new Map(entries.map((e) => [e.name, e]));
  const specs: StreamedTensorSpec[] = entries.map((e) => ({ name: e.name, dtype: 'F32', shape: e.shape }));
  let done = 0;
  return writeSafetensorsStreaming(
    outPath,
    specs,
    async (spec) => {
      const e = getOrThrow(byName, spec.name, `${ckpt.path}: conversion entries`);
      const t = await ckpt.read(e.key, { upcastHalf: true });
      let values = sourceToFloat32(e.key, t);
      if (e.part) {
        const n = values.length / e.part.of;
        values = values.subarray(e.part.index * n, (e.part.index + 1) * n);
      }
      const { data } = convertReleasedTensor(e.layout, e.sourceShape, values);
      options.onTensor?.(++done, entries.length, e.name);
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    },
    options.metadata,
  );
}

/** The message for parameters a checkpoint does not provide. */
export function missingMessage(path: string, missing: readonly string[]): string {
  return `${path}: ${missing.length} parameter(s) of the model are not in the checkpoint: ${missing.slice(0, 12).join(', ')}${missing.length > 12 ? ', ...' : ''}`;
}

/**
 * Converts `checkpointPath` into the safetensors file `outPath` (float32 tensors under the
 * target names). Checks everything first; with `strict` (default) a missing expected parameter
 * stops the conversion before anything is written.
 */
export async function convertTorchCheckpoint(
  checkpointPath: string,
  outPath: string,
  options: ConvertCheckpointOptions,
): Promise<ConversionReport> {
  const ckpt = await TorchCheckpoint.open(checkpointPath, options);
  try {
    const { entries, report } = planConversion(ckpt, options);
    if ((options.strict ?? true) && report.missing.length)
      throw new ConversionError(missingMessage(checkpointPath, report.missing));
    const bytes = await writeConversion(ckpt, entries, outPath, options);
    return { ...report, bytes };
  } finally {
    await ckpt.close();
  }
}
