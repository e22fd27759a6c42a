/**
 * An export's weights read from the model's checkpoint (model.safetensors) by ranges, each when its
 * graph or external data file is written, instead of from the loaded model: the recording then
 * needs weights of the right shapes only (zeros), and no copy of the model's weights is held.
 */
import { readSafetensorsTensorSync } from '../io/safetensors-node.js';
import { toFloat32, type SafetensorsHeader, type SafetensorsTensorInfo } from '../io/safetensors.js';
import type { DeferredValues } from './onnx-model.js';
import { getOrThrow } from '../util/checked.js';

/**
 * Each parameter's values as the file's tensor `prefix + name` (a tensor table of a part of the
 * model: `model_language.net.` for the text tower). Every parameter must be in the file with its
 * shape; the values are read (and converted to float32 from F16/BF16) each time they are asked for.
 */
export function checkpointWeights(
  path: string,
  header: SafetensorsHeader,
  params: ReadonlyMap<string, { shape: number[] }>,
  prefix = '',
): (name: string) => DeferredValues {
  const inFile = new Map(header.tensors.map((t) => [t.name, t]));
  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const [name, p] of params) {
    const t = inFile.get(prefix + name);
    if (!t) throw new Error(`${path}: tensor '${prefix + name}' is missing`);
    if (t.shape.join() !== p.shape.join())
      throw new Error(
        `${path}: tensor '${prefix + name}' has shape [${t.shape.join(', ')}], expected [${p.shape.join(', ')}]`,
      );
    tensors.set(name, t);
  }
  return (name) => {
    const tensor = getOrThrow(tensors, name, `${path}: the checked tensors`);
    const length = tensor.shape.reduce((a, b) => a * b, 1);
    return {
      length,
      byteLength: length * 4,
      read: () => toFloat32({ data: readSafetensorsTensorSync(path, header, tensor) }),
    };
  };
}
