/** The two kinds of prompt APE distinguishes: category names (vocabulary) and free-form sentences. */
export interface PromptSet {
  /** Category names; each is its own prompt, kept out of the vision-language fusion. */
  vocabulary: string[];
  /** Sentences / referring expressions; each is its own prompt, fused with the image. */
  sentences: string[];
}

export type PromptKind = 'vocabulary' | 'sentence';

/** One prompt of a PromptSet in model order: all vocabulary entries, then all sentences. */
export interface PromptEntry {
  text: string;
  kind: PromptKind;
  /** Position in the combined list (the model's prompt/column index). */
  index: number;
}

/**
 * APE's rule for a plain prompt string: split on commas, trim, drop empty items; if any item
 * contains a space they are all sentences, otherwise they are all vocabulary.
 */
export function parsePromptString(text: string): PromptSet {
  const items = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return items.some((s) => s.includes(' '))
    ? { vocabulary: [], sentences: items }
    : { vocabulary: items, sentences: [] };
}

/** Validates and lists the prompts of a set in model order. */
export function promptEntries(prompts: Partial<PromptSet>): PromptEntry[] {
  const vocabulary = prompts.vocabulary ?? [];
  const sentences = prompts.sentences ?? [];
  const check = (list: unknown, field: string) => {
    if (!Array.isArray(list)) throw new Error(`prompts.${field} must be a list of strings`);
    list.forEach((t, i) => {
      if (typeof t !== 'string') throw new Error(`prompts.${field}[${i}] must be a string, got ${typeof t}`);
      if (t.trim().length === 0) throw new Error(`prompts.${field}[${i}] is empty`);
    });
  };
  check(vocabulary, 'vocabulary');
  check(sentences, 'sentences');
  return [
    ...vocabulary.map((text, i) => ({ text, kind: 'vocabulary' as const, index: i })),
    ...sentences.map((text, i) => ({ text, kind: 'sentence' as const, index: vocabulary.length + i })),
  ];
}
