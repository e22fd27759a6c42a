import type { Rle } from './rle.js';

/**
 * Union (or, with intersect, intersection) of masks of one size, walking the runs of both at
 * once as maskApi.c rleMerge does, so the resulting runs match the reference exactly.
 */
export function rleMerge(rles: readonly Rle[], intersect = false): Rle {
  if (rles.length === 0) throw new Error('rleMerge: no masks to merge');
  const [h, w] = rles[0].size;
  let counts = rles[0].counts.slice();
  for (let i = 1; i < rles.length; i++) {
    const b = rles[i];
    if (b.size[0] !== h || b.size[1] !== w) {
      throw new Error(`rleMerge: mask ${i} has size [${b.size}] but mask 0 has [${h}, ${w}]`);
    }
    counts = mergeTwo(counts, b.counts, intersect);
  }
  return { size: [h, w], counts };
}

function mergeTwo(a: readonly number[], b: readonly number[], intersect: boolean): number[] {
  const out: number[] = [];
  let ca = a[0] ?? 0;
  let cb = b[0] ?? 0;
  let va = false;
  let vb = false;
  let v = false;
  let ia = 1;
  let ib = 1;
  let cc = 0;
  let ct = 1;
  while (ct > 0) {
    const c = Math.min(ca, cb);
    cc += c;
    ct = 0;
    ca -= c;
    if (!ca && ia < a.length) {
      ca = a[ia++];
      va = !va;
    }
    ct += ca;
    cb -= c;
    if (!cb && ib < b.length) {
      cb = b[ib++];
      vb = !vb;
    }
    ct += cb;
    const vp: boolean = v;
    v = intersect ? va && vb : va || vb;
    if (v !== vp || ct === 0) {
      out.push(cc);
      cc = 0;
    }
  }
  return out;
}
