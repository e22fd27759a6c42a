import {
  PickleDict,
  PickleError,
  PickleRefusedError,
  describe,
  type PickleGlobal,
  type PickleHooks,
} from './pickle.js';

/**
 * The allow-list of Python globals a `torch.save` state dict may name, and the plain objects they
 * build: a storage becomes a `TorchStorageRef` (which zip entry, dtype, element count), a tensor a
 * `TorchTensorRef` (storage, offset, shape, strides). Nothing here reads tensor data, so the parts
 * of a checkpoint that are not wanted (optimizer state) cost only their pickle bytes.
 */

/** Element types, named as safetensors names them. */
export type TorchDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const dtypeByteSize: Record<TorchDType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

const storageTypes: Record<string, TorchDType> = {
  DoubleStorage: 'F64',
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

/** The class a storage's persistent id names (`torch.FloatStorage`, ...). */
export class TorchStorageType implements PickleGlobal {
  constructor(
    readonly qualifiedName: string,
    readonly dtype: TorchDType,
  ) {}
}

/** One `data/<key>` record of the archive, as the pickle refers to it. */
export interface TorchStorageRef {
  readonly key: string;
  readonly dtype: TorchDType;
  /** Number of elements the pickle says the storage holds. */
  readonly numel: number;
  /** Device it was saved from ('cpu', 'cuda:0', ...); read to the CPU regardless. */
  readonly location: string;
}

/** A tensor as `_rebuild_tensor_v2` describes it: a strided view into a storage. */
export class TorchTensorRef {
  constructor(
    readonly storage: TorchStorageRef,
    readonly storageOffset: number,
    readonly shape: readonly number[],
    readonly strides: readonly number[],
  ) {}

  get dtype(): TorchDType {
    return this.storage.dtype;
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** True when the elements are laid out row-major without gaps. */
  get contiguous(): boolean {
    let expected = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== expected) return false;
      expected *= this.shape[i]!;
    }
    return true;
  }

  /**
   * The element range [first, end) of the storage this view touches; throws when it reaches
   * outside the storage.
   */
  extent(): { first: number; end: number } {
    const n = this.numel;
    if (n === 0) return { first: this.storageOffset, end: this.storageOffset };
    let last = this.storageOffset;
    for (let i = 0; i < this.shape.length; i++) last += (this.shape[i]! - 1) * this.strides[i]!;
    return { first: this.storageOffset, end: last + 1 };
  }
}

/** Python's `collections.OrderedDict`: REDUCE with () or with one iterable of pairs; NEWOBJ too. */
const orderedDict: PickleGlobal = {
  qualifiedName: 'collections.OrderedDict',
  call: (args) => makeDict('collections.OrderedDict', args),
  construct: (args) => makeDict('collections.OrderedDict', args),
};

function makeDict(name: string, args: readonly unknown[]): PickleDict {
  const d = new PickleDict();
  if (args.length === 0) return d;
  if (args.length !== 1) throw new PickleError(`${name} called with ${args.length} arguments`);
  const items = args[0];
  if (items instanceof Map) {
    for (const [k, v] of items) d.set(k, v);
    return d;
  }
  if (!Array.isArray(items)) throw new PickleError(`${name} called with ${describe(items)}`);
  for (const pair of items) {
    if (!Array.isArray(pair) || pair.length !== 2)
      throw new PickleError(`${name} item is not a pair (${describe(pair)})`);
    d.set(pair[0], pair[1]);
  }
  return d;
}

function nonNegativeInt(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new PickleError(`${what} must be a non-negative integer, got ${describe(v)}`);
  }
  return v;
}

function intTuple(v: unknown, what: string): number[] {
  if (!Array.isArray(v)) throw new PickleError(`${what} must be a tuple of integers, got ${describe(v)}`);
  return v.map((x, i) => nonNegativeInt(x, `${what}[${i}]`));
}

function isStorageRef(v: unknown): v is TorchStorageRef {
  return typeof v === 'object' && v !== null && storageRefs.has(v);
}

const storageRefs = new WeakSet<object>();

/** `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`. */
const rebuildTensorV2: PickleGlobal = {
  qualifiedName: 'torch._utils._rebuild_tensor_v2',
  call(args) {
    if (args.length < 4 || args.length > 7)
      throw new PickleError(`_rebuild_tensor_v2 called with ${args.length} arguments`);
    const [storage, offset, size, stride] = args;
    if (!isStorageRef(storage))
      throw new PickleError(`_rebuild_tensor_v2: first argument is not a storage (${describe(storage)})`);
    const shape = intTuple(size, '_rebuild_tensor_v2 size');
    const strides = intTuple(stride, '_rebuild_tensor_v2 stride');
    if (shape.length !== strides.length) {
      throw new PickleError(`_rebuild_tensor_v2: size has ${shape.length} dimensions but stride has ${strides.length}`);
    }
    const ref = new TorchTensorRef(
      storage,
      nonNegativeInt(offset, '_rebuild_tensor_v2 storage offset'),
      shape,
      strides,
    );
    const { end } = ref.extent();
    if (ref.numel > 0 && end > storage.numel) {
      throw new PickleError(
        `tensor of shape [${shape}] strides [${strides}] offset ${ref.storageOffset} reaches element ${end - 1} of storage '${storage.key}', which has ${storage.numel} elements`,
      );
    }
    if (!Number.isSafeInteger(ref.numel)) throw new PickleError(`tensor of shape [${shape}] is too large`);
    return ref;
  },
};

/** `torch._utils._rebuild_parameter(data, requires_grad, backward_hooks)`: a Parameter is its data here. */
const rebuildParameter: PickleGlobal = {
  qualifiedName: 'torch._utils._rebuild_parameter',
  call(args) {
    if (args.length !== 3) throw new PickleError(`_rebuild_parameter called with ${args.length} arguments`);
    if (!(args[0] instanceof TorchTensorRef)) throw new PickleError(`_rebuild_parameter of ${describe(args[0])}`);
    return args[0];
  },
};

const allowed = new Map<string, PickleGlobal>([
  [orderedDict.qualifiedName, orderedDict],
  [rebuildTensorV2.qualifiedName, rebuildTensorV2],
  [rebuildParameter.qualifiedName, rebuildParameter],
  ...Object.entries(storageTypes).map(([name, dtype]): [string, PickleGlobal] => [
    `torch.${name}`,
    new TorchStorageType(`torch.${name}`, dtype),
  ]),
]);

export interface TorchArchiveStorages {
  /** Size in bytes of the archive record for storage `key`, or undefined when there is none. */
  storageBytes(key: string): number | undefined;
}

/**
 * Pickle hooks for a torch zip checkpoint: the allow-list above, storages from the archive's
 * `data/` records (checked against their declared element count), and BUILD only where torch
 * uses it on plain data (a state dict's `_metadata`).
 */
export function torchPickleHooks(archive: TorchArchiveStorages): PickleHooks {
  const storages = new Map<string, TorchStorageRef>();
  return {
    findGlobal(module, name) {
      const g = allowed.get(`${module}.${name}`);
      if (!g) throw new PickleRefusedError(`${module}.${name}`);
      return g;
    },
    persistentLoad(pid) {
      if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') {
        throw new PickleError(
          `unsupported persistent id (${describe(pid)}); expected ('storage', type, key, location, numel)`,
        );
      }
      const [, type, key, location, numel] = pid;
      if (!(type instanceof TorchStorageType))
        throw new PickleError(`persistent id names storage type ${describe(type)}`);
      if (typeof key !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(key))
        throw new PickleError(`bad storage key ${describe(key)}`);
      if (typeof location !== 'string') throw new PickleError(`bad storage location ${describe(location)}`);
      const count = nonNegativeInt(numel, `element count of storage '${key}'`);
      const seen = storages.get(key);
      if (seen) {
        if (seen.dtype !== type.dtype || seen.numel !== count) {
          throw new PickleError(
            `storage '${key}' is referred to as ${seen.numel} x ${seen.dtype} and as ${count} x ${type.dtype}`,
          );
        }
        return seen;
      }
      const bytes = archive.storageBytes(key);
      if (bytes === undefined) throw new PickleError(`storage '${key}' has no record data/${key} in the archive`);
      const expected = count * dtypeByteSize[type.dtype];
      if (bytes !== expected) {
        throw new PickleError(
          `storage '${key}' is ${count} x ${type.dtype} (${expected} bytes) but its record data/${key} has ${bytes} bytes`,
        );
      }
      const ref: TorchStorageRef = Object.freeze({ key, dtype: type.dtype, numel: count, location });
      storageRefs.add(ref);
      storages.set(key, ref);
      return ref;
    },
    build(obj, state) {
      // OrderedDict's state is its attribute dict (`_metadata` of a state dict); keep it, run nothing.
      if (obj instanceof PickleDict && (state instanceof Map || state === null || Array.isArray(state))) {
        obj.attributes = state;
        return;
      }
      throw new PickleError(`BUILD on ${describe(obj)} with ${describe(state)} is not allowed`);
    },
  };
}
