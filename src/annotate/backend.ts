import type { AnnotateSettings, ImageOutcome } from './types.js';

/** An image still to be annotated: its position in the run and its path. */
export interface PendingImage {
  index: number;
  path: string;
}

/**
 * Where the model work of a run happens: model processes on this machine (LocalBackend) or
 * workers behind a queue (QueueProducer). `run` reports each image's outcome as it arrives (an
 * image may be reported more than once; the journal keeps the first) and resolves when every
 * image given has been reported.
 */
export interface AnnotationBackend {
  run(
    images: readonly PendingImage[],
    settings: AnnotateSettings,
    report: (index: number, outcome: ImageOutcome) => void,
  ): Promise<void>;
  close(): Promise<void>;
}
