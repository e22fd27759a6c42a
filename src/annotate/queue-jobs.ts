import type { AnnotateSettings, ImageOutcome } from './types.js';

/** The queue `ape annotate --queue` and `ape worker` meet on unless told otherwise. */
export const DEFAULT_QUEUE_NAME = 'ape-annotate';

/** What a job carries: one image's bytes and everything needed to annotate it the run's way. */
export interface ImageJobData {
  /** The run's id (a hash of its output folder, prompts and model): job ids start with it. */
  run: string;
  /** The image's position in the run. */
  index: number;
  /** The image's path on the producer's machine (for messages). */
  name: string;
  /** The image file, base64 (BullMQ job data is JSON). */
  image: string;
  settings: AnnotateSettings;
  /** The fingerprint of the run's model; a worker with another model refuses the job. */
  model: string;
}

/** What a job returns: the image's outcome (an unreadable image is an outcome, not a failure). */
export type ImageJobResult = ImageOutcome;

/** A job id per run and image, so adding an image twice (after a restart) adds one job. */
export function imageJobId(run: string, index: number): string {
  return `${run}-${index}`;
}

/** The image index of one of this run's job ids, or null for another run's job. */
export function imageIndexOfJob(run: string, jobId: string): number | null {
  const prefix = `${run}-`;
  if (!jobId.startsWith(prefix)) return null;
  const rest = jobId.slice(prefix.length);
  return /^\d+$/.test(rest) ? Number(rest) : null;
}
