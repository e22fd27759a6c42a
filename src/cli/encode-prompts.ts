import type { ApeModel } from '../inference/ape-model.js';
import { progressFrom } from '../util/progress.js';
import { PROMPT_PROGRESS_FROM } from '../text/prompt-embeddings.js';

/**
 * Encodes the prompts that neither the model's prompt cache nor its store holds (the first run of
 * a large vocabulary: minutes with the released text tower) on the engine predict runs on, before
 * predicting: with at least PROMPT_PROGRESS_FROM new ones, a bar with rate and ETA on a terminal,
 * plain lines otherwise, on `stream` (default stderr).
 */
export async function encodePromptsWithProgress(
  model: Pick<ApeModel, 'cachePromptsOnEngine'>,
  texts: readonly string[],
  label: string,
  stream?: NodeJS.WriteStream,
): Promise<void> {
  await model.cachePromptsOnEngine(texts, progressFrom(PROMPT_PROGRESS_FROM, { label, unit: 'prompt', stream }));
}
