import { mkdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { downloadHubFile, type HubDownloadOptions } from '../io/hub/hub-download.js';
import { writeJsonFile } from '../util/write-json.js';
import { convertCheckpointToFolder } from './convert-released.js';
import { CONFIG_FILE, WEIGHTS_FILE } from './model-folder.js';
import { releasedConfig, releasedModel, UnsupportedModelError, type ReleasedModel } from './released-models.js';

/**
 * The local cache of released models (Node): `APE_HOME` (default ~/.cache/ape) holds
 * `models/<name>/` (converted model folders, what loadModel reads) and `downloads/<name>/`
 * (the hub's model_final.pth while it downloads and converts; removed afterwards unless kept).
 */
export function apeHome(): string {
  return process.env.APE_HOME || join(homedir(), '.cache', 'ape');
}

/** Where the converted folder of a released name lives. */
export function releasedModelDir(name: string, home = apeHome()): string {
  return join(home, 'models', releasedModel(name).name);
}

function usableEntry(model: ReleasedModel): ReleasedModel & { preset: NonNullable<ReleasedModel['preset']> } {
  if (!model.preset)
    throw new UnsupportedModelError(
      `${model.title} ('${model.name}') is not supported yet: ${model.unsupported ?? 'it has no preset'}`,
    );
  return model as ReleasedModel & { preset: NonNullable<ReleasedModel['preset']> };
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

export interface PullOptions extends Pick<HubDownloadOptions, 'endpoint' | 'token' | 'onProgress' | 'retries'> {
  /** Cache folder (default apeHome()). */
  home?: string;
  /** Keep the downloaded model_final.pth next to the converted folder. */
  keepCheckpoint?: boolean;
  /** Download and convert again even when the converted folder is there. */
  force?: boolean;
  /** Called after each converted tensor. */
  onConvert?: (done: number, total: number, name: string) => void;
  /** One line per step (download, convert, ...), for the command line. */
  log?: (line: string) => void;
}

export interface PullResult {
  /** The converted model folder. */
  dir: string;
  /** False when the folder was already in the cache and nothing was done. */
  pulled: boolean;
  /** The kept checkpoint, with keepCheckpoint. */
  checkpoint?: string;
}

/**
 * Makes a released model available by name: downloads its checkpoint from the hub (resuming,
 * size and sha256 checked), converts it into `models/<name>/` (written under a temporary name and
 * renamed, so a failed conversion leaves no folder behind) and removes the checkpoint.
 */
export async function pullModel(name: string | ReleasedModel, options: PullOptions = {}): Promise<PullResult> {
  // An entry of one's own (same shape as the table's) pulls other hub files the same way.
  const model = typeof name === 'string' ? releasedModel(name) : usableEntry(name);
  const home = options.home ?? apeHome();
  const dir = join(home, 'models', model.name);
  if (!options.force && (await exists(join(dir, CONFIG_FILE))) && (await exists(join(dir, WEIGHTS_FILE))))
    return { dir, pulled: false };

  const downloads = join(home, 'downloads', model.name);
  const checkpoint = join(downloads, 'model_final.pth');
  await mkdir(downloads, { recursive: true });
  let source: { sha256?: string; size?: number; verified?: boolean } = {};
  if (await exists(checkpoint)) {
    options.log?.(`using the downloaded ${checkpoint}`);
  } else {
    options.log?.(`downloading ${model.title} (${model.hub.repo}, ${model.hub.path})`);
    const r = await downloadHubFile(model.hub, checkpoint, {
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.token ? { token: options.token } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.retries !== undefined ? { retries: options.retries } : {}),
    });
    source = { sha256: r.sha256, size: r.size, verified: r.verified };
    options.log?.(
      `downloaded ${r.size} bytes${r.resumedFrom ? ` (resumed from ${r.resumedFrom})` : ''}, sha256 ${r.sha256}${r.verified ? ' (verified)' : ' (the hub gave no checksum to compare)'}`,
    );
  }

  const partial = `${dir}.partial-${process.pid}`;
  await rm(partial, { recursive: true, force: true });
  try {
    options.log?.(`converting to ${dir} (preset ${model.preset})`);
    await convertCheckpointToFolder(
      checkpoint,
      releasedConfig(model),
      partial,
      options.onConvert ? { onTensor: options.onConvert } : {},
    );
    await writeJsonFile(
      join(partial, 'source.json'),
      { name: model.name, title: model.title, hub: model.hub, apeConfig: model.apeConfig, ...source },
      2,
    );
    await rm(dir, { recursive: true, force: true });
    await rename(partial, dir);
  } catch (err) {
    await rm(partial, { recursive: true, force: true });
    throw new Error(
      `${model.title}: the download is kept at ${checkpoint}, but converting it failed: ${(err as Error).message}`,
    );
  }
  if (options.keepCheckpoint) return { dir, pulled: true, checkpoint };
  await unlink(checkpoint);
  await rm(downloads, { recursive: true, force: true });
  return { dir, pulled: true };
}
