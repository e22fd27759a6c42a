import type { TextTokenizer } from './tokenizer.js';
import { WordTokenizer, splitWords } from './word-tokenizer.js';
import { RecentLists } from '../util/recent-lists.js';

/**
 * What a model's text side cannot read. A word-level tokenizer with a word list (the shipped
 * model's) knows only those words: any other word becomes an anonymous hash bucket, so a prompt
 * like "cat" is scored without meaning. CLIP BPE (the released models) spells every word out of
 * sub-words and has no such limit.
 */
export function unknownWords(tokenizer: TextTokenizer, text: string): string[] {
  if (!(tokenizer instanceof WordTokenizer) || tokenizer.words.length === 0) return [];
  const known = knownWords(tokenizer);
  // Punctuation is not a word a user asked for.
  return [...new Set(splitWords(text).filter((w) => /[\p{L}\p{N}]/u.test(w) && !known.has(w)))];
}

// A memo, not state: keyed by the word list itself, so a new list gets its own set.
const wordSets = new WeakMap<readonly string[], Set<string>>();

/** The tokenizer's words as a set, made once per word list (predict checks every prompt of a vocabulary of 100,000). */
function knownWords(tokenizer: WordTokenizer): Set<string> {
  let set = wordSets.get(tokenizer.words);
  if (!set) {
    set = new Set(tokenizer.words);
    wordSets.set(tokenizer.words, set);
  }
  return set;
}

/**
 * One warning for the prompts with words outside the model's vocabulary (none when all are
 * known), naming the words and listing the ones the model does know.
 */
export function vocabularyWarnings(tokenizer: TextTokenizer, prompts: readonly string[]): string[] {
  // A list seen lately (a vocabulary predicted image after image): the answer of then.
  let recent = recentWarnings.get(tokenizer);
  if (!recent) {
    recent = new RecentLists(RECENT_LISTS);
    recentWarnings.set(tokenizer, recent);
  }
  let warnings = recent.get('', prompts);
  if (!warnings) {
    warnings = listUnknownWords(tokenizer, prompts);
    recent.set('', prompts, warnings);
  }
  return [...warnings];
}

/** Prompt lists remembered per tokenizer (a server alternating between a few vocabularies checks each once). */
const RECENT_LISTS = 4;

// A memo, not state: the lists lately checked with each tokenizer and their warnings.
const recentWarnings = new WeakMap<TextTokenizer, RecentLists<string[]>>();

function listUnknownWords(tokenizer: TextTokenizer, prompts: readonly string[]): string[] {
  const words = new Set<string>();
  for (const p of prompts) for (const w of unknownWords(tokenizer, p)) words.add(w);
  if (words.size === 0) return [];
  const known = [...(tokenizer as WordTokenizer).words].filter((w) => /[\p{L}\p{N}]/u.test(w)).sort();
  const list = [...words].map((w) => `'${w}'`).join(', ');
  return [
    `${list} ${words.size === 1 ? 'is' : 'are'} not in this model's vocabulary, so prompts with ${words.size === 1 ? 'it' : 'them'} get meaningless scores; this model knows ${known.length} words: ${known.join(', ')}`,
  ];
}
