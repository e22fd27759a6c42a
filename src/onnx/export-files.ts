/** Node side of the ONNX export: the model's hash, and writing an export folder. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically, writeFully } from '../io/atomic-write.js';
import { MANIFEST_FILE, type NetworkExport } from './export-network.js';

/** sha256 over the files a model is made of (its config and weights: what an export was made from). */
export async function filesHash(paths: readonly string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const path of paths) {
    await new Promise<void>((resolve, reject) => {
      createReadStream(path)
        .on('data', (chunk) => hash.update(chunk))
        .on('end', () => resolve())
        .on('error', (e) => reject(new Error(`filesHash: cannot read ${path}: ${e.message}`)));
    });
  }
  return hash.digest('hex');
}

/** Writes the segments, then the manifest (so a folder with a manifest is complete). */
export async function writeNetworkExport(dir: string, exported: NetworkExport): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [i, segment] of exported.manifest.segments.entries()) {
    await writeFileAtomically(join(dir, segment.file), (handle) => writeFully(handle, exported.files[i]!, 0));
  }
  const manifest = new TextEncoder().encode(`${JSON.stringify(exported.manifest, null, 2)}\n`);
  await writeFileAtomically(join(dir, MANIFEST_FILE), (handle) => writeFully(handle, manifest, 0));
}
