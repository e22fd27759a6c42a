import { UsageError } from './command.js';

/** The inference engines: TF.js on wasm (the reference, and training's) and ONNX Runtime (docs/onnx.md). */
export const ENGINES = ['tfjs', 'ort'] as const;
export type EngineName = (typeof ENGINES)[number];

/**
 * `--engine NAME`, tfjs when not given. `available` narrows the list for commands that run on
 * fewer engines; an engine outside it is refused by name.
 */
export function engineOption(value: string | undefined, available: readonly EngineName[] = ENGINES): EngineName {
  const engine = value ?? 'tfjs';
  if (!(available as readonly string[]).includes(engine)) {
    throw new UsageError(`--engine ${engine}: not an engine this command runs on; available: ${available.join(', ')}`);
  }
  return engine as EngineName;
}
