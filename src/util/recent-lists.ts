/**
 * Values remembered for whole lists of strings, under a tag: a list met again (a vocabulary
 * predicted image after image) costs one comparison per element instead of a lookup per string.
 * The least recently used are dropped past `maxLists` lists or `maxWeight` in all.
 */
export class RecentLists<V> {
  /** Most recently used first. */
  private entries: { tag: string; list: readonly string[]; value: V; weight: number }[] = [];

  constructor(
    private readonly maxLists: number,
    private readonly maxWeight = Number.POSITIVE_INFINITY,
  ) {}

  /** The value kept for exactly `list` (same strings, same order) under `tag`. */
  get(tag: string, list: readonly string[]): V | undefined {
    const at = this.entries.findIndex((e) => e.tag === tag && sameList(e.list, list));
    if (at < 0) return undefined;
    const [entry] = this.entries.splice(at, 1);
    if (!entry) return undefined;
    this.entries.unshift(entry);
    return entry.value;
  }

  /**
   * Keeps `value` for `list` (a copy of it, unless it is frozen); false, keeping nothing, when its
   * weight alone is over maxWeight.
   */
  set(tag: string, list: readonly string[], value: V, weight = 0): boolean {
    if (weight > this.maxWeight) return false;
    this.entries = this.entries.filter((e) => !(e.tag === tag && sameList(e.list, list)));
    this.entries.unshift({ tag, list: Object.isFrozen(list) ? list : [...list], value, weight });
    let total = this.entries.reduce((a, e) => a + e.weight, 0);
    while (this.entries.length > this.maxLists || total > this.maxWeight) total -= this.entries.pop()?.weight ?? 0;
    return true;
  }

  clear(): void {
    this.entries = [];
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
