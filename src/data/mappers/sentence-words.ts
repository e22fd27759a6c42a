/**
 * Word-level edits and checks on grounding sentences that geometric augmentation needs.
 */

const SWAPS: Record<string, string> = {
  left: 'right',
  right: 'left',
  leftmost: 'rightmost',
  rightmost: 'leftmost',
  lefter: 'righter',
  righter: 'lefter',
};

/** Swaps "left" and "right" (and -most forms) as whole words, keeping the case of the first letter. */
export function swapLeftRight(sentence: string): string {
  return sentence.replace(/[A-Za-z]+/g, (word) => {
    const swapped = SWAPS[word.toLowerCase()];
    if (!swapped) return word;
    if (word === word.toUpperCase() && word.length > 1) return swapped.toUpperCase();
    return word[0] === word[0]!.toUpperCase() ? swapped[0]!.toUpperCase() + swapped.slice(1) : swapped;
  });
}

const ORDINALS = new Set([
  'first',
  'second',
  'third',
  'fourth',
  'fifth',
  'sixth',
  'seventh',
  'eighth',
  'ninth',
  'tenth',
  'last',
  'leftmost',
  'rightmost',
  'topmost',
  'bottommost',
  'uppermost',
  'lowermost',
  'middle',
  'center',
  'centre',
]);

/**
 * True when the sentence picks an object by its rank or position among others ("second from
 * left", "the leftmost dog", "3rd"); cropping could remove the others and change the referent.
 */
export function hasOrdinalWord(sentence: string): boolean {
  for (const word of sentence.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
    if (ORDINALS.has(word) || /^\d+(st|nd|rd|th)$/.test(word)) return true;
  }
  return false;
}
