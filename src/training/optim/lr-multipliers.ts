/**
 * Per-parameter learning-rate factors from a config map (detectron2's lr_factor_func written as
 * data). A key is a name prefix (`"backbone."`) or, when it holds `*`, a pattern over the whole
 * name in which `*` stands for any characters (`"*.sampling_offsets.*"`). Where several keys
 * match, the last one listed wins, so a general key can come first and its exceptions after it.
 * A factor of 0 freezes the parameter: it gets no gradient, no moments and no weight decay.
 */
export function lrMultiplierFor(name: string, multipliers: Readonly<Record<string, number>>): number {
  let factor = 1;
  for (const [key, f] of Object.entries(multipliers)) if (keyMatches(key, name)) factor = f;
  return factor;
}

function keyMatches(key: string, name: string): boolean {
  if (!key.includes('*')) return name.startsWith(key);
  const parts = key.split('*');
  // A wildcard pattern: the pieces in order, the first at the start and the last at the end.
  if (!name.startsWith(parts[0]!)) return false;
  let at = parts[0]!.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const found = name.indexOf(parts[i]!, at);
    if (found < 0) return false;
    at = found + parts[i]!.length;
  }
  const last = parts[parts.length - 1]!;
  return name.length - last.length >= at && name.endsWith(last);
}

/** The multipliers' keys that match none of `names` (a typo would otherwise change nothing silently). */
export function unmatchedMultiplierKeys(
  names: Iterable<string>,
  multipliers: Readonly<Record<string, number>>,
): string[] {
  const all = [...names];
  return Object.keys(multipliers).filter((key) => !all.some((name) => keyMatches(key, name)));
}
