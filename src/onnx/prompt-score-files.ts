/**
 * Node side of the prompt-score export: writing its folder, checking and loading it into
 * onnxruntime-node sessions, and the disk cache around them (the network exports' checks: model
 * hash, opset, shape).
 */
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { checkGraphFiles, readManifestJson, writeGraphsAndManifest } from './export-files.js';
import { type CachedExportRequest, inspectManifest, loadOrMakeExport } from './export-cache.js';
import { ortSessionOptions } from './ort-network.js';
import { OrtPromptScorer } from './ort-prompt-scorer.js';
import {
  checkPromptScoreManifest,
  PROMPT_SCORE_MANIFEST_FILE,
  PROMPT_SCORE_MANIFEST_VERSION,
  promptScoreExportKey,
  type PromptScoreExport,
  type PromptScoreShape,
} from './prompt-score-export.js';

export function writePromptScoreExport(dir: string, exported: PromptScoreExport): Promise<void> {
  const { manifest, files } = exported;
  return writeGraphsAndManifest(dir, manifest.graphs, files, PROMPT_SCORE_MANIFEST_FILE, manifest);
}

/** The export in `dir` as an OrtPromptScorer: its manifest parsed, every graph file checked before any session is made. */
export async function loadPromptScoreExport(dir: string, options: { threads?: number } = {}): Promise<OrtPromptScorer> {
  const path = join(dir, PROMPT_SCORE_MANIFEST_FILE);
  const manifest = checkPromptScoreManifest(await readManifestJson(path, 'OrtPromptScorer'), path);
  await checkGraphFiles(dir, manifest.graphs, 'OrtPromptScorer');
  // With the CPU arena: these graphs run 25 times per image for 100,000 names, and their
  // activations are a few MB (the widest: 100 x 4,096 floats each), so keeping them allocated
  // costs little memory and saves an allocation per intermediate per run.
  const sessionOptions = { ...ortSessionOptions(options), enableCpuMemArena: true };
  const sessions: ort.InferenceSession[] = [];
  try {
    for (const graph of manifest.graphs) {
      const file = join(dir, graph.file);
      sessions.push(
        await ort.InferenceSession.create(file, sessionOptions).catch((e: Error) => {
          throw new Error(`OrtPromptScorer: ONNX Runtime refused ${file}: ${e.message}`);
        }),
      );
    }
  } catch (e) {
    await Promise.all(sessions.map((s) => s.release()));
    throw e;
  }
  return new OrtPromptScorer(manifest, sessions, (type, data, dims) => new ort.Tensor(type, data, dims));
}

/** The cached prompt-score export that fits, or one made now (loadOrMakeExport). */
export function loadCachedPromptScorer(
  request: CachedExportRequest<PromptScoreShape, PromptScoreExport>,
): Promise<OrtPromptScorer> {
  const { hash, shape, threads } = request;
  return loadOrMakeExport({
    dirs: request.dirs,
    inspect: (dir) =>
      inspectManifest(dir, {
        manifestFile: PROMPT_SCORE_MANIFEST_FILE,
        hash,
        version: PROMPT_SCORE_MANIFEST_VERSION,
        key: promptScoreExportKey(shape),
        keyOf: (s: PromptScoreShape) => (Array.isArray(s.widths) ? promptScoreExportKey(s) : 'a malformed shape'),
      }),
    make: request.make,
    write: writePromptScoreExport,
    load: (dir) => loadPromptScoreExport(dir, { threads }),
    report: request.report,
  });
}
