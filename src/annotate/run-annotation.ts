import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeJsonFile } from '../util/write-json.js';
import { Progress } from '../util/progress.js';
import type { AnnotationBackend, PendingImage } from './backend.js';
import { ANNOTATIONS_FILE, ERRORS_FILE, buildCocoDataset, writeCocoDataset } from './coco-output.js';
import { JOURNAL_FILE, Journal, type JournalHeader } from './journal.js';
import { OVERLAY_DIR, writeOverlay } from './overlay.js';
import type { AnnotateSettings, ImageOutcome } from './types.js';

export interface AnnotationRun {
  /** The images, in run order (listImages). */
  images: string[];
  settings: AnnotateSettings;
  /** The model's fingerprint (modelFingerprint). */
  model: string;
  outDir: string;
  /** Also draw each annotated image into outDir/overlays. */
  overlays?: boolean;
  /** Where progress goes (default: a Progress bar on stderr). */
  progress?: (done: number, total: number) => void;
  log?: (line: string) => void;
}

export interface AnnotationSummary {
  images: number;
  /** Images finished in earlier sessions (read from the journal). */
  resumed: number;
  annotated: number;
  errors: number;
  annotations: number;
  seconds: number;
}

/** The journal's first line for a run; also what a queue run's job ids are derived from. */
export function journalHeader(run: Pick<AnnotationRun, 'images' | 'settings' | 'model'>): JournalHeader {
  const imagesHash = createHash('sha256').update(run.images.join('\n')).digest('hex').slice(0, 16);
  return { journal: 'ape-annotate/1', settings: run.settings, model: run.model, images: run.images.length, imagesHash };
}

/**
 * Annotates every image the journal in outDir does not hold yet on `backend`, recording each
 * outcome as it arrives, then writes annotations.json and errors.json from the whole journal.
 * Killed at any point, the same call continues where it stopped and writes the same files.
 */
export async function runAnnotation(run: AnnotationRun, backend: AnnotationBackend): Promise<AnnotationSummary> {
  const t0 = performance.now();
  const outDir = resolve(run.outDir);
  await mkdir(outDir, { recursive: true });
  if (run.overlays) await mkdir(join(outDir, OVERLAY_DIR), { recursive: true });
  const journal = Journal.open(join(outDir, JOURNAL_FILE), journalHeader(run));
  try {
    const resumed = journal.done.size;
    const pending: PendingImage[] = run.images
      .map((path, index) => ({ index, path }))
      .filter((p) => !journal.done.has(p.index));
    if (resumed > 0) run.log?.(`resuming: ${resumed} of ${run.images.length} images were done in an earlier session`);
    const bar = run.progress ? undefined : new Progress({ total: pending.length, label: 'annotate', unit: 'img' });
    let done = 0;
    // Overlays are drawn one at a time behind the model work; the run waits for the last one.
    let drawing = Promise.resolve();
    let drawError: unknown = null;
    const report = (index: number, outcome: ImageOutcome) => {
      if (!journal.record(index, outcome)) return;
      done++;
      if (run.progress) run.progress(done, pending.length);
      else bar?.tick();
      if (run.overlays && outcome.ok) {
        const path = run.images[index]!;
        drawing = drawing
          .then(() => writeOverlay(outDir, index, path, outcome.result, run.settings))
          .catch((error) => {
            drawError ??= error;
          });
      }
    };
    if (pending.length > 0) await backend.run(pending, run.settings, report);
    bar?.finish();
    await drawing;
    if (drawError) throw drawError;
    const missing = run.images.length - journal.done.size;
    if (missing > 0) throw new Error(`${missing} images have no outcome; run the same command again to finish them`);

    const { dataset, errors } = buildCocoDataset(run.images, outDir, run.settings, run.model, journal.done);
    await writeCocoDataset(join(outDir, ANNOTATIONS_FILE), dataset);
    await writeJsonFile(join(outDir, ERRORS_FILE), { errors }, 2);
    return {
      images: run.images.length,
      resumed,
      annotated: dataset.images.length,
      errors: errors.length,
      annotations: dataset.annotations.length,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    journal.close();
  }
}
