import { parsePromptString } from '../text/prompts.js';
import { DEFAULT_SCORE_THRESHOLD } from '../inference/results.js';
import { parseDecimal } from '../util/decimal.js';
import { UsageError } from './command.js';

/** The parseArgs options that promptOptions reads. */
export const PROMPT_ARGS = {
  vocab: { type: 'string', multiple: true },
  sentence: { type: 'string', multiple: true },
  prompt: { type: 'string', multiple: true },
} as const;

/**
 * The prompts of `--vocab`, `--sentence` and `--prompt` (APE's comma rule), vocabulary first;
 * `fallbackVocabulary` (a dataset's category names) when they give no names.
 */
export function promptOptions(
  values: { vocab?: string[]; sentence?: string[]; prompt?: string[] },
  fallbackVocabulary: readonly string[] = [],
): { vocabulary: string[]; sentences: string[] } {
  const vocabulary = (values.vocab ?? []).flatMap((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  );
  const sentences = (values.sentence ?? []).map((s) => s.trim()).filter((s) => s.length > 0);
  for (const p of values.prompt ?? []) {
    const parsed = parsePromptString(p);
    vocabulary.push(...parsed.vocabulary);
    sentences.push(...parsed.sentences);
  }
  if (vocabulary.length === 0) vocabulary.push(...fallbackVocabulary);
  if (vocabulary.length + sentences.length === 0) throw new UsageError('give prompts: --vocab, --sentence or --prompt');
  return { vocabulary, sentences };
}

/** `--threshold T` (or another score option): a decimal from 0 to 1 ('0x1' is refused), `fallback` when not given. */
export function thresholdOption(
  value: string | undefined,
  name = 'threshold',
  fallback = DEFAULT_SCORE_THRESHOLD,
): number {
  if (value === undefined) return fallback;
  const t = parseDecimal(value);
  if (!Number.isFinite(t) || t < 0 || t > 1)
    throw new UsageError(`--${name} must be a number from 0 to 1, got '${value}'`);
  return t;
}
