/**
 * Writing a safetensors file one tensor at a time, for models too large to hold twice: the
 * header is made from names, dtypes and shapes alone, then each tensor's bytes are asked for,
 * written and let go. The layout is the one `writeSafetensors` (src/io/safetensors.ts) produces:
 * data ordered by descending dtype alignment, then name; header padded with spaces to 8 bytes.
 * Written to a temporary file and renamed, so a failed run leaves no half file behind.
 */
import { writeFileAtomically, writeFully } from './atomic-write.js';
import {
  compareFileOrder,
  dtypeSize,
  encodeHeader,
  isDtype,
  sortedMetadata,
  type SafetensorsDtype,
} from './safetensors.js';

export interface StreamedTensorSpec {
  name: string;
  dtype: SafetensorsDtype;
  shape: readonly number[];
}

/** Tensors in file order, each with its byte range in the data section, and the header bytes. */
export function planSafetensors(
  specs: readonly StreamedTensorSpec[],
  metadata?: Record<string, string>,
): { header: Uint8Array; order: { spec: StreamedTensorSpec; begin: number; end: number }[] } {
  const names = new Set<string>();
  for (const s of specs) {
    if (s.name === '__metadata__' || s.name.length === 0)
      throw new Error(`safetensors: invalid tensor name ${JSON.stringify(s.name)}`);
    if (names.has(s.name)) throw new Error(`safetensors: tensor '${s.name}' given twice`);
    names.add(s.name);
    if (!isDtype(s.dtype)) throw new Error(`safetensors: tensor '${s.name}': unknown dtype ${JSON.stringify(s.dtype)}`);
    s.shape.forEach((d, i) => {
      if (!Number.isSafeInteger(d) || d < 0)
        throw new Error(`safetensors: tensor '${s.name}': shape[${i}] must be a non-negative integer, got ${d}`);
    });
  }
  const sorted = [...specs].sort((a, b) => compareFileOrder(a.name, a.dtype, b.name, b.dtype));
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header.__metadata__ = sortedMetadata(metadata, 'safetensors');
  const order: { spec: StreamedTensorSpec; begin: number; end: number }[] = [];
  let offset = 0;
  for (const spec of sorted) {
    const bytes = spec.shape.reduce((a, d) => a * d, dtypeSize(spec.dtype));
    header[spec.name] = { dtype: spec.dtype, shape: [...spec.shape], data_offsets: [offset, offset + bytes] };
    order.push({ spec, begin: offset, end: offset + bytes });
    offset += bytes;
  }
  return { header: encodeHeader(header), order };
}

/**
 * Writes `path`; `produce` is called once per tensor, in file order, and must return exactly
 * the tensor's little-endian bytes in its dtype. Returns the file size.
 */
export async function writeSafetensorsStreaming(
  path: string,
  specs: readonly StreamedTensorSpec[],
  produce: (spec: StreamedTensorSpec) => Promise<Uint8Array>,
  metadata?: Record<string, string>,
): Promise<number> {
  const { header, order } = planSafetensors(specs, metadata);
  return writeFileAtomically(path, async (handle) => {
    let position = 0;
    const write = async (bytes: Uint8Array) => {
      await writeFully(handle, bytes, position);
      position += bytes.byteLength;
    };
    await write(header);
    for (const { spec, begin, end } of order) {
      const bytes = await produce(spec);
      if (bytes.byteLength !== end - begin) {
        throw new Error(
          `safetensors: tensor '${spec.name}' ([${spec.shape.join(', ')}] ${spec.dtype}) needs ${end - begin} bytes, got ${bytes.byteLength}`,
        );
      }
      await write(bytes);
    }
    await handle.sync();
    return position;
  });
}
