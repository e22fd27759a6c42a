import { nms } from '../../structures/nms.js';
import type { Rng } from '../../util/random.js';
import type { AnnotationRecord } from '../types.js';
import { getOrThrow } from '../../util/checked.js';

export interface GroundingSampleOptions {
  /** Overlapping referred objects above this box IoU are thinned (APE: 0.6). */
  nmsIou: number;
  /** Most phrases per sample (APE: 128). */
  maxPrompts: number;
}

/** The phrases of one image-centric grounding sample and, per phrase, the annotations it refers to. */
export interface GroundingSelection {
  prompts: string[];
  /** For each kept annotation (index into the input list), its prompt. */
  pairs: Array<{ annotation: number; prompt: number }>;
}

/**
 * All phrases of an image in one sample (APE's image-centric grounding): referred objects whose
 * boxes overlap above `nmsIou` are thinned by NMS with random scores (two phrases about heavily
 * overlapping boxes are ambiguous targets), identical phrases are merged into one prompt with
 * every object they name, and at most `maxPrompts` phrases are kept, chosen at random.
 */
export function selectGroundingPhrases(
  annotations: readonly AnnotationRecord[],
  rng: Rng,
  options: GroundingSampleOptions,
): GroundingSelection {
  const candidates = annotations
    .map((a, i) => ({ a, i }))
    .filter(({ a }) => !a.isCrowd && (a.sentences?.length ?? 0) > 0);
  const scores = candidates.map(() => rng.next());
  const kept = nms(
    candidates.map(({ a }) => a.box),
    scores,
    options.nmsIou,
  ).sort((x, y) => x - y);
  const byPhrase = new Map<string, number[]>();
  for (const k of kept) {
    const { a, i } = candidates[k]!;
    for (const s of new Set(a.sentences)) {
      const list = byPhrase.get(s);
      if (list) list.push(i);
      else byPhrase.set(s, [i]);
    }
  }
  let phrases = [...byPhrase.keys()];
  if (phrases.length > options.maxPrompts) {
    phrases = rng.shuffle(phrases).slice(0, options.maxPrompts);
  }
  const pairs: GroundingSelection['pairs'] = [];
  phrases.forEach((p, prompt) => {
    for (const annotation of getOrThrow(byPhrase, p, 'grounding phrases')) pairs.push({ annotation, prompt });
  });
  return { prompts: phrases, pairs };
}
