import { open } from 'node:fs/promises';
import { PickleDict, PickleError, unpickle, type PickleLimits } from './pickle.js';
import { TorchTensorRef, dtypeByteSize, torchPickleHooks, type TorchDType } from './torch-globals.js';
import { readTensorData, type TensorData } from './tensor-data.js';
import { ZipArchive, ZipFormatError } from './zip-archive.js';

/**
 * Reading `torch.save` checkpoints (the zip format, torch >= 1.6) without Python and without
 * running pickled code. The pickle is interpreted against an allow-list (see torch-globals.ts);
 * tensors become references into the archive's storage records, and only the ones asked for are
 * read, one at a time, straight from the file.
 */

export type { TorchDType } from './torch-globals.js';
export type { TensorData } from './tensor-data.js';

/** What a checkpoint says about one tensor, without its data. */
export interface TorchTensorInfo {
  key: string;
  dtype: TorchDType;
  shape: number[];
  strides: number[];
  storageOffset: number;
  /** The storage record (`data/<storageKey>`); keys that share it share storage. */
  storageKey: string;
  contiguous: boolean;
  /** Bytes of the tensor once materialised contiguously in its own dtype. */
  byteLength: number;
}

export interface TorchTensor {
  /** 'F32' for F16/BF16 storages read with `upcastHalf`; `sourceDtype` keeps the stored type. */
  dtype: TorchDType;
  sourceDtype: TorchDType;
  shape: number[];
  data: TensorData;
}

export interface TorchCheckpointOptions {
  /**
   * Which top-level entry holds the state dict. Default: 'model' when the top level is a dict
   * with a dict under 'model' (detectron2, APE), else 'state_dict' likewise, else the top level.
   * Nested dicts below the root are flattened with dots; non-tensor values are left out.
   */
  root?: string;
  /** Pickle bounds (memo entries, stack, nesting, string length). */
  pickleLimits?: Partial<PickleLimits>;
  /** Largest data.pkl accepted, in bytes (default 512 MiB). */
  maxPickleBytes?: number;
}

export interface ReadTorchCheckpointOptions extends TorchCheckpointOptions {
  /** Read only the keys for which this returns true (the others are never read). */
  select?: (key: string) => boolean;
  /** Return F16/BF16 tensors as float32 values (dtype 'F32'). Default false: raw Uint16Array bits. */
  upcastHalf?: boolean;
}

const MAX_NESTING = 64;

/** An open checkpoint: its tensor list, and tensor data read on demand. Close it when done. */
export class TorchCheckpoint {
  private constructor(
    readonly path: string,
    private readonly archive: ZipArchive,
    private readonly prefix: string,
    private readonly refs: Map<string, TorchTensorRef>,
    /** Top-level entries outside the root (e.g. 'optimizer', 'scheduler', 'iteration'). */
    readonly skipped: string[],
    /** Where the state dict was found ('' for the top level). */
    readonly root: string,
  ) {}

  static async open(path: string, options: TorchCheckpointOptions = {}): Promise<TorchCheckpoint> {
    let archive: ZipArchive;
    try {
      archive = await ZipArchive.open(path);
    } catch (err) {
      if (err instanceof ZipFormatError && (await looksLikeLegacyTorch(path))) {
        throw new Error(
          `${path}: this is the legacy torch.save format (torch < 1.6 or _use_new_zipfile_serialization=False), which is not supported; re-save it with a recent torch`,
        );
      }
      throw err;
    }
    try {
      const prefix = findPrefix(path, archive);
      const byteorder = archive.entries.get(`${prefix}byteorder`);
      if (byteorder) {
        const order = new TextDecoder().decode(await archive.read(byteorder.name, 64)).trim();
        if (order !== 'little')
          throw new Error(`${path}: storages are ${order}-endian; only little-endian is supported`);
      }
      const pkl = await archive.read(`${prefix}data.pkl`, options.maxPickleBytes ?? 512 * 1024 * 1024);
      let top: unknown;
      try {
        top = unpickle(
          pkl,
          torchPickleHooks({ storageBytes: (key) => archive.entries.get(`${prefix}data/${key}`)?.size }),
          options.pickleLimits,
        );
      } catch (err) {
        if (err instanceof PickleError) err.message = `${path}: ${err.message}`;
        throw err;
      }
      const { root, value, skipped } = pickRoot(path, top, options.root);
      const refs = new Map<string, TorchTensorRef>();
      flatten(path, value, '', refs, 0, new Set());
      return new TorchCheckpoint(path, archive, prefix, refs, skipped, root);
    } catch (err) {
      await archive.close();
      throw err;
    }
  }

  /** Keys of the state dict, in file order. */
  keys(): string[] {
    return [...this.refs.keys()];
  }

  has(key: string): boolean {
    return this.refs.has(key);
  }

  info(key: string): TorchTensorInfo {
    const ref = this.ref(key);
    return {
      key,
      dtype: ref.dtype,
      shape: [...ref.shape],
      strides: [...ref.strides],
      storageOffset: ref.storageOffset,
      storageKey: ref.storage.key,
      contiguous: ref.contiguous,
      byteLength: ref.numel * dtypeByteSize[ref.dtype],
    };
  }

  /** Every tensor's description, in file order. */
  list(): Map<string, TorchTensorInfo> {
    return new Map(this.keys().map((k) => [k, this.info(k)]));
  }

  /** Reads one tensor's data (contiguous, a fresh array that the caller owns). */
  async read(key: string, options: { upcastHalf?: boolean } = {}): Promise<TorchTensor> {
    const ref = this.ref(key);
    try {
      const { dtype, data } = await readTensorData(this.archive, `${this.prefix}data/${ref.storage.key}`, ref, options);
      return { dtype, sourceDtype: ref.dtype, shape: [...ref.shape], data };
    } catch (err) {
      if (err instanceof Error) {
        const rest = err.message.startsWith(`${this.path}: `) ? err.message.slice(this.path.length + 2) : err.message;
        err.message = `${this.path}: tensor '${key}': ${rest}`;
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.archive.close();
  }

  private ref(key: string): TorchTensorRef {
    const ref = this.refs.get(key);
    if (!ref) throw new Error(`${this.path}: no tensor '${key}' in the checkpoint`);
    return ref;
  }
}

/** Keys, dtypes, shapes (and layout) of a checkpoint's state dict, reading no tensor data. */
export async function listTorchCheckpoint(
  path: string,
  options: TorchCheckpointOptions = {},
): Promise<Map<string, TorchTensorInfo>> {
  const ckpt = await TorchCheckpoint.open(path, options);
  try {
    return ckpt.list();
  } finally {
    await ckpt.close();
  }
}

/** Reads the (selected) tensors of a checkpoint's state dict, one at a time from the file. */
export async function readTorchCheckpoint(
  path: string,
  options: ReadTorchCheckpointOptions = {},
): Promise<Map<string, TorchTensor>> {
  const ckpt = await TorchCheckpoint.open(path, options);
  try {
    const out = new Map<string, TorchTensor>();
    for (const key of ckpt.keys()) {
      if (options.select && !options.select(key)) continue;
      out.set(key, await ckpt.read(key, { upcastHalf: options.upcastHalf }));
    }
    return out;
  } finally {
    await ckpt.close();
  }
}

/** torch names every record `<archive name>/...`; the name varies ('archive', the file's stem, ...). */
function findPrefix(path: string, archive: ZipArchive): string {
  const candidates = [...archive.entries.keys()].filter((n) => /^[^/]*\/data\.pkl$/.test(n) || n === 'data.pkl');
  if (candidates.length === 0) {
    const hint = [...archive.entries.keys()].some((n) => n.endsWith('constants.pkl'))
      ? ' (a TorchScript archive? those are not supported)'
      : '';
    throw new Error(`${path}: not a torch.save checkpoint: no data.pkl in the zip archive${hint}`);
  }
  if (candidates.length > 1)
    throw new Error(`${path}: more than one data.pkl in the zip archive (${candidates.join(', ')})`);
  return candidates[0]!.slice(0, -'data.pkl'.length);
}

function pickRoot(
  path: string,
  top: unknown,
  root: string | undefined,
): { root: string; value: unknown; skipped: string[] } {
  const others = (name: string) => (top instanceof Map ? [...top.keys()].map(String).filter((k) => k !== name) : []);
  if (root !== undefined) {
    if (!(top instanceof Map))
      throw new Error(`${path}: the checkpoint's top level is not a dict, so it has no '${root}'`);
    if (!top.has(root))
      throw new Error(`${path}: no '${root}' at the top level (found: ${[...top.keys()].map(String).join(', ')})`);
    return { root, value: top.get(root), skipped: others(root) };
  }
  if (top instanceof Map) {
    for (const name of ['model', 'state_dict']) {
      if (top.get(name) instanceof Map) return { root: name, value: top.get(name), skipped: others(name) };
    }
  }
  return { root: '', value: top, skipped: [] };
}

function flatten(
  path: string,
  value: unknown,
  prefix: string,
  out: Map<string, TorchTensorRef>,
  depth: number,
  seen: Set<unknown>,
): void {
  if (!(value instanceof PickleDict)) {
    throw new Error(`${path}: the state dict${prefix ? ` at '${prefix.slice(0, -1)}'` : ''} is not a dict`);
  }
  if (depth > MAX_NESTING) throw new Error(`${path}: dicts nested deeper than ${MAX_NESTING} at '${prefix}'`);
  if (seen.has(value)) return;
  seen.add(value);
  for (const [k, v] of value) {
    if (typeof k !== 'string' && typeof k !== 'number') continue;
    const key = prefix + String(k);
    if (v instanceof TorchTensorRef) {
      if (out.has(key)) throw new Error(`${path}: key '${key}' appears twice`);
      out.set(key, v);
    } else if (v instanceof PickleDict) {
      flatten(path, v, `${key}.`, out, depth + 1, seen);
    }
  }
}

async function looksLikeLegacyTorch(path: string): Promise<boolean> {
  const f = await open(path, 'r');
  try {
    const head = new Uint8Array(2);
    await f.read(head, 0, 2, 0);
    return head[0] === 0x80 && head[1] === 0x02;
  } finally {
    await f.close();
  }
}
