/**
 * An exported network on ONNX Runtime in Node: the export folder read from disk into
 * onnxruntime-node sessions; running it is SegmentedNetwork's (shared with the page).
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { MANIFEST_FILE } from './export-network.js';
import { checkExternalData, readManifestJson } from './export-files.js';
import { checkManifest, createSegmentSessions, SegmentedNetwork } from './segmented-network.js';
import { required } from '../util/checked.js';

export { checkManifest, type OrtNetworkInputs, type OrtNetworkOutputs } from './segmented-network.js';

export interface OrtNetworkOptions {
  /** Threads of each ONNX Runtime session (default: ONNX Runtime's choice, all cores). */
  threads?: number;
  /** Write ONNX Runtime's per-op profile (JSON) with this file prefix; endProfiling ends it. */
  profile?: string;
}

/** The onnxruntime-node session options of every export (the network's segments, the text tower's graphs). */
export function ortSessionOptions(options: OrtNetworkOptions = {}): ort.InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    // Idle intra-op threads sleep instead of spinning: on a 2-core machine the spinning threads
    // otherwise take the core that the host selection and post-processing (JS) run on.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
    // No CPU memory arena: the arena keeps its high-water mark of activations for the session's
    // life (ape-ti segment 0 peaked 0.8-0.9 GB higher at 512 and 1024 with it, at the same CPU
    // time; docs/onnx.md, Measured).
    enableCpuMemArena: false,
    ...(options.threads ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
    ...(options.profile ? { enableProfiling: true, profileFilePrefix: options.profile } : {}),
  };
}

export class OrtNetwork extends SegmentedNetwork {
  static async load(dir: string, options: OrtNetworkOptions = {}): Promise<OrtNetwork> {
    const path = join(dir, MANIFEST_FILE);
    const manifest = checkManifest(await readManifestJson(path, 'OrtNetwork'), path);
    const sessionOptions = ortSessionOptions(options);
    const sessions = await createSegmentSessions(manifest, async (i) => {
      const segment = required(manifest.segments[i], 'OrtNetwork: the segment');
      const file = join(dir, segment.file);
      await access(file).catch((e: Error) => {
        throw new Error(`OrtNetwork: cannot read ${file}: ${e.message}`);
      });
      if (segment.data)
        await checkExternalData(dir, segment.data).catch((e: Error) => {
          throw new Error(`OrtNetwork: ${e.message}`);
        });
      // From the path, so that ONNX Runtime finds (and maps) the external data next to it.
      return ort.InferenceSession.create(file, sessionOptions).catch((e: Error) => {
        throw new Error(`OrtNetwork: ONNX Runtime refused ${file}: ${e.message}`);
      });
    });
    return new OrtNetwork(manifest, sessions, (type, data, dims) => new ort.Tensor(type, data, dims));
  }
}
