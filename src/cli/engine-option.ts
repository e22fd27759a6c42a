import { UsageError } from './command.js';

/** The inference engines this build has: TF.js on wasm (ONNX Runtime is not part of it yet). */
export const ENGINES = ['tfjs'] as const;
export type EngineName = (typeof ENGINES)[number];

/** `--engine NAME`, tfjs when not given; an engine this build lacks is refused by name. */
export function engineOption(value: string | undefined): EngineName {
  const engine = value ?? 'tfjs';
  if (!(ENGINES as readonly string[]).includes(engine)) {
    throw new UsageError(`--engine ${engine}: this build has no such engine; available: ${ENGINES.join(', ')} (TF.js on wasm)`);
  }
  return engine as EngineName;
}
