/**
 * An exported network on ONNX Runtime in Node: the export folder read from disk into
 * onnxruntime-node sessions; running it is SegmentedNetwork's (shared with the page).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { MANIFEST_FILE } from './export-network.js';
import { checkManifest, createSegmentSessions, SegmentedNetwork } from './segmented-network.js';

export { checkManifest, type OrtNetworkInputs, type OrtNetworkOutputs } from './segmented-network.js';

export interface OrtNetworkOptions {
  /** Threads of each ONNX Runtime session (default: ONNX Runtime's choice, all cores). */
  threads?: number;
}

export class OrtNetwork extends SegmentedNetwork {
  static async load(dir: string, options: OrtNetworkOptions = {}): Promise<OrtNetwork> {
    const path = join(dir, MANIFEST_FILE);
    const text = await readFile(path, 'utf8').catch((e: Error) => {
      throw new Error(`OrtNetwork: cannot read ${path}: ${e.message}`);
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new Error(`${path}: ${(e as Error).message}`);
    }
    const manifest = checkManifest(parsed, path);
    const sessionOptions: ort.InferenceSession.SessionOptions = options.threads
      ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 }
      : {};
    const sessions = await createSegmentSessions(manifest, async (i) => {
      const file = join(dir, manifest.segments[i]!.file);
      const bytes = await readFile(file).catch((e: Error) => {
        throw new Error(`OrtNetwork: cannot read ${file}: ${e.message}`);
      });
      return ort.InferenceSession.create(bytes, sessionOptions).catch((e: Error) => {
        throw new Error(`OrtNetwork: ONNX Runtime refused ${file}: ${e.message}`);
      });
    });
    return new OrtNetwork(manifest, sessions, (type, data, dims) => new ort.Tensor(type, data, dims));
  }
}
