import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { pullModel, type PullOptions } from '../inference/model-hub.js';
import { RELEASED_MODELS, findReleasedModel } from '../inference/released-models.js';
import { Progress } from '../util/progress.js';
import { UsageError } from './command.js';

/** The shipped model: models/default of this package (found from this file, not the working folder). */
export function defaultModelDir(): string {
  return fileURLToPath(new URL('../../models/default', import.meta.url));
}

const MIB = 1024 * 1024;

/** Progress callbacks for a pull: a bar in MiB for the download, one in tensors for the conversion. */
export function pullProgress(): Pick<PullOptions, 'onProgress' | 'onConvert' | 'log'> {
  let download: Progress | null = null;
  let shown = 0;
  let convert: Progress | null = null;
  return {
    log: (line) => console.error(line),
    onProgress: (received, total) => {
      if (total === undefined) return;
      download ??= new Progress({ total: Math.ceil(total / MIB), label: 'download', unit: 'MiB' });
      const mib = Math.floor(received / MIB);
      if (mib > shown || received === total) {
        download.tick(received === total ? Math.ceil(total / MIB) - shown : mib - shown);
        shown = received === total ? Math.ceil(total / MIB) : mib;
        if (received === total) download.finish('');
      }
    },
    onConvert: (done, total, name) => {
      convert ??= new Progress({ total, label: 'convert', unit: 'tensors' });
      convert.tick(1, name);
      if (done === total) convert.finish('');
    },
  };
}

/** The released names the code can run, for messages. */
export const supportedNames = () =>
  RELEASED_MODELS.filter((m) => m.preset)
    .map((m) => m.name)
    .join(', ');

/**
 * `--model DIR|NAME`: the folder to load. A released name (ape-ti, ape-l-d) is pulled into the
 * cache first when it is not there; anything else must be an existing model folder.
 */
export async function resolveModelOption(value: string | undefined): Promise<string> {
  if (value === undefined) return defaultModelDir();
  const info = await stat(value).catch(() => null);
  if (info?.isDirectory()) return value;
  if (info)
    throw new UsageError(
      `--model ${value}: is a file; give a model folder (config.json, model.safetensors, ...) or a released model name (${supportedNames()})`,
    );
  if (findReleasedModel(value)) return (await pullModel(value, pullProgress())).dir;
  throw new UsageError(
    `--model ${value}: no such folder, and not a released model name (${supportedNames()}; 'ape pull --list' shows them all)`,
  );
}

/** `--size N`: a positive multiple of 64 (the coarsest stride of the released models). */
export function sizeOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 64 || Number(value) % 64 !== 0)
    throw new UsageError(`--size must be a multiple of 64 (e.g. 512, 800, 1024), got '${value}'`);
  return Number(value);
}
