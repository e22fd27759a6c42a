import { writeFileSync } from 'node:fs';
import type { tf } from '../../src/engine/engine.js';
import { releasedLayoutOfKey } from '../../src/convert/released-mapping.js';
import { floatToHalf, halfToFloat } from '../../src/io/safetensors.js';
import { bytesOf, checkpointPickle, torchArchive, type TensorSpec } from './torch-test-writer.js';

/** This project's [in, out] / HWIO layouts back to torch's [out, in] / OIHW. */
function toTorchLayout(key: string, shape: number[], data: Float32Array): { shape: number[]; data: Float32Array } {
  const layout = releasedLayoutOfKey(key, shape.length);
  if (layout === 'linear') {
    const [i, o] = shape as [number, number];
    const out = new Float32Array(i * o);
    for (let r = 0; r < i; r++) for (let c = 0; c < o; c++) out[c * i + r] = data[r * o + c]!;
    return { shape: [o, i], data: out };
  }
  if (layout === 'conv') {
    const [kh, kw, b, a] = shape as [number, number, number, number];
    const out = new Float32Array(data.length);
    for (let y = 0; y < kh; y++)
      for (let x = 0; x < kw; x++)
        for (let q = 0; q < b; q++)
          for (let p = 0; p < a; p++) {
            out[((p * b + q) * kh + y) * kw + x] = data[((y * kw + x) * b + q) * a + p]!;
          }
    return { shape: [a, b, kh, kw], data: out };
  }
  return { shape, data };
}

/**
 * Writes a torch checkpoint of the tiny model (to `path`; returns the float32 values each parameter
 * should convert back to) in the released layout: `model_vision.` keys, torch
 * layouts, the text tower in float16 (as APE-D stores it), class_embed aliased under
 * transformer.decoder (shared storages), a RoPE and a criterion buffer, and an optimizer.
 */
export function writeTinyTorchCheckpoint(
  path: string,
  params: Map<string, tf.Variable>,
  drop: string[] = [],
): Map<string, Float32Array> {
  const model: Record<string, TensorSpec> = {};
  const storages: Record<string, Uint8Array> = {};
  const expected = new Map<string, Float32Array>();
  let n = 0;
  for (const [name, v] of params) {
    if (drop.includes(name)) continue;
    const key = `model_vision.${name}`;
    const values = v.dataSync() as Float32Array;
    const torch = toTorchLayout(key, [...v.shape], values);
    const storage = String(n++);
    if (name.startsWith('model_language.')) {
      const bits = Uint16Array.from(torch.data, (x) => floatToHalf(x));
      storages[storage] = bytesOf(bits);
      model[key] = { storage, storageType: 'HalfStorage', numel: bits.length, shape: torch.shape };
      expected.set(
        name,
        Float32Array.from(values, (x) => halfToFloat(floatToHalf(x))),
      );
    } else {
      storages[storage] = bytesOf(torch.data);
      model[key] = { storage, storageType: 'FloatStorage', numel: torch.data.length, shape: torch.shape };
      expected.set(name, values);
    }
    if (name.startsWith('class_embed.') && !name.startsWith('class_embed.6.'))
      model[`model_vision.transformer.decoder.${name}`] = { ...model[key]! };
  }
  storages[String(n)] = bytesOf(Float32Array.from({ length: 64 }, (_, i) => Math.cos(i)));
  model['model_vision.backbone.net.rope_win.freqs_cos'] = {
    storage: String(n),
    storageType: 'FloatStorage',
    numel: 64,
    shape: [4, 16],
  };
  storages[String(n + 1)] = bytesOf(BigInt64Array.from([9n, 10n, 11n]));
  model['model_vision.criterion.0.fed_loss_pad_classes'] = {
    storage: String(n + 1),
    storageType: 'LongStorage',
    numel: 3,
    shape: [3],
  };
  storages[String(n + 2)] = bytesOf(new Float32Array(16));
  const optimizer: TensorSpec = { storage: String(n + 2), storageType: 'FloatStorage', numel: 16, shape: [16] };
  writeFileSync(path, torchArchive(checkpointPickle(model, optimizer), storages));
  return expected;
}
