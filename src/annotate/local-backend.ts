import type { AnnotationBackend, PendingImage } from './backend.js';
import { ModelPool, type ModelPoolOptions } from './model-pool.js';
import type { AnnotateSettings, ImageOutcome } from './types.js';

export interface LocalBackendOptions extends ModelPoolOptions {
  /** Told how the encoding of the run's new prompts goes (done, total), batch by batch, before the first image. */
  onEncoding?: (done: number, total: number) => void;
}

/** `--workers N`: N model processes on this machine, each reading its images from disk. */
export class LocalBackend implements AnnotationBackend {
  private readonly pool: ModelPool;

  constructor(
    modelDir: string,
    workers: number,
    private readonly options: LocalBackendOptions = {},
  ) {
    this.pool = new ModelPool(modelDir, workers, options);
  }

  async run(
    images: readonly PendingImage[],
    settings: AnnotateSettings,
    report: (index: number, outcome: ImageOutcome) => void,
  ): Promise<void> {
    await this.pool.start();
    // The prompts first, on one process: the others then read them from the prompt store.
    await this.pool.preparePrompts([...settings.vocabulary, ...settings.sentences], this.options.onEncoding);
    // Two images per process in flight: the next one is ready as soon as a process frees up.
    const window = this.pool.size * 2;
    let next = 0;
    await new Promise<void>((resolve, reject) => {
      let running = 0;
      const pump = () => {
        if (next >= images.length && running === 0) return resolve();
        while (running < window && next < images.length) {
          const { index, path } = images[next++]!;
          running++;
          this.pool.annotate({ name: path, path, settings }).then((outcome) => {
            running--;
            try {
              report(index, outcome);
            } catch (error) {
              return reject(error);
            }
            pump();
          }, reject);
        }
      };
      pump();
    });
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
