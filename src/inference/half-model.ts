import { copyFile, mkdir, readFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensorsFile, writeSafetensorsFile } from '../io/safetensors-node.js';
import { floatToHalf, halfToFloat, toFloat32, type SafetensorsInput } from '../io/safetensors.js';
import { CONFIG_FILE, WEIGHTS_FILE, parseModelConfig, tokenizerFileName } from './model-folder.js';

/** IEEE half's largest finite value: a weight beyond it would become infinite. */
const HALF_MAX = 65504;

/** What writing a model folder's weights in half precision did. */
export interface HalfModel {
  path: string;
  bytesBefore: number;
  bytesAfter: number;
  tensors: number;
  /** The largest rounding error of any tensor relative to that tensor's largest magnitude. */
  worstRelativeError: { tensor: string; error: number };
  /** Nonzero weights that became zero (below half's smallest subnormal, 6e-8). */
  flushedToZero: number;
}

/**
 * Copies the model folder `fromDir` to `outDir` with every float32 weight stored as IEEE half
 * (rounded to nearest even), which halves model.safetensors; loaders read F16 weights back as
 * float32 (model-folder.ts), so the copy runs wherever the original does. config.json, the
 * tokenizer file and MODEL_CARD.md are copied; export and prompt caches (onnx/, prompt-cache/)
 * are not, since they are rebuilt from the new weights. A weight beyond half's range is refused
 * by name rather than turned into infinity, and an existing model in `outDir` is never overwritten.
 */
export async function writeHalfModel(fromDir: string, outDir: string): Promise<HalfModel> {
  const source = join(fromDir, WEIGHTS_FILE);
  if (!existsSync(source)) throw new Error(`${fromDir}: not a model folder (no ${WEIGHTS_FILE})`);
  const target = join(outDir, WEIGHTS_FILE);
  if (existsSync(target)) throw new Error(`${target} exists; remove it or choose another output folder`);
  const config = parseModelConfig(await readFile(join(fromDir, CONFIG_FILE), 'utf8'), join(fromDir, CONFIG_FILE));
  const file = await readSafetensorsFile(source);
  const tensors = new Map<string, SafetensorsInput>();
  let worst = { tensor: '', error: 0 };
  let flushedToZero = 0;
  for (const [name, entry] of file.tensors) {
    if (entry.dtype !== 'F32' && entry.dtype !== 'F16')
      throw new Error(`${source}: tensor '${name}' has dtype ${entry.dtype}; a model's weights are F32 or F16`);
    const data = toFloat32(entry);
    let largest = 0;
    let error = 0;
    for (let i = 0; i < data.length; i++) {
      const x = data[i]!;
      if (!(Math.abs(x) <= HALF_MAX))
        throw new Error(
          `${source}: tensor '${name}' holds ${x} at index ${i}, outside half precision's range (±${HALF_MAX})`,
        );
      const back = halfToFloat(floatToHalf(x));
      if (back === 0 && x !== 0) flushedToZero++;
      largest = Math.max(largest, Math.abs(x));
      error = Math.max(error, Math.abs(back - x));
    }
    const relative = largest > 0 ? error / largest : 0;
    if (relative >= worst.error) worst = { tensor: name, error: relative };
    tensors.set(name, { dtype: 'F16', shape: entry.shape, data });
  }
  await mkdir(outDir, { recursive: true });
  await writeSafetensorsFile(target, tensors, file.metadata);
  for (const name of [CONFIG_FILE, tokenizerFileName(config), 'MODEL_CARD.md']) {
    if (existsSync(join(fromDir, name))) await copyFile(join(fromDir, name), join(outDir, name));
  }
  return {
    path: outDir,
    bytesBefore: (await stat(source)).size,
    bytesAfter: (await stat(target)).size,
    tensors: tensors.size,
    worstRelativeError: worst,
    flushedToZero,
  };
}
