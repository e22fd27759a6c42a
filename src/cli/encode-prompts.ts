import type { ApeModel } from '../inference/ape-model.js';
import { Progress } from '../util/progress.js';

/** New prompts from this many on are encoded with a progress display (fewer take a moment). */
export const PROGRESS_FROM = 1000;

/**
 * Encodes the prompts that neither the model's prompt cache nor its store holds (the first run of
 * a large vocabulary: minutes with the released text tower) on the engine predict runs on, before
 * predicting: with at least PROGRESS_FROM new ones, a bar with rate and ETA on a terminal, plain
 * lines otherwise, on `stream` (default stderr).
 */
export async function encodePromptsWithProgress(
  model: ApeModel,
  texts: readonly string[],
  label: string,
  stream?: NodeJS.WriteStream,
): Promise<void> {
  const shown = { bar: null as Progress | null, done: 0 };
  await model.cachePromptsOnEngine(texts, (done, total) => {
    if (total < PROGRESS_FROM) return;
    shown.bar ??= new Progress({ total, label, unit: 'prompt', stream });
    shown.bar.tick(done - shown.done);
    shown.done = done;
  });
  shown.bar?.finish();
}
