import type { Rle } from './rle.js';
import { walkRunPairs } from './rle-runs.js';

/**
 * Union (or, with intersect, intersection) of masks of one size, walking the runs of both at
 * once as maskApi.c rleMerge does, so the resulting runs match the reference exactly.
 */
export function rleMerge(rles: readonly Rle[], intersect = false): Rle {
  if (rles.length === 0) throw new Error('rleMerge: no masks to merge');
  const [h, w] = rles[0]!.size;
  let counts = rles[0]!.counts.slice();
  for (let i = 1; i < rles.length; i++) {
    const b = rles[i]!;
    if (b.size[0] !== h || b.size[1] !== w) {
      throw new Error(`rleMerge: mask ${i} has size [${b.size}] but mask 0 has [${h}, ${w}]`);
    }
    counts = mergeTwo(counts, b.counts, intersect);
  }
  return { size: [h, w], counts };
}

function mergeTwo(a: readonly number[], b: readonly number[], intersect: boolean): number[] {
  const out: number[] = [];
  // A run of the result ends where the merged value changes from one stretch to the next.
  let v = false;
  let cc = 0;
  walkRunPairs(a, b, (c, va, vb) => {
    const next = intersect ? va && vb : va || vb;
    if (next !== v) {
      out.push(cc);
      cc = 0;
      v = next;
    }
    cc += c;
  });
  out.push(cc);
  return out;
}
