/**
 * Walks the runs of two same-size RLE masks together as maskApi.c does in rleIou and rleMerge:
 * each visit is one stretch of `length` pixels over which mask a is `inA` and mask b is `inB`
 * (stretches of length 0 occur where a mask has an empty run; callers rely on seeing them).
 */
export function walkRunPairs(
  a: readonly number[],
  b: readonly number[],
  visit: (length: number, inA: boolean, inB: boolean) => void,
): void {
  let ca = a[0] ?? 0;
  let cb = b[0] ?? 0;
  let va = false;
  let vb = false;
  let ia = 1;
  let ib = 1;
  let ct = 1;
  while (ct > 0) {
    const c = Math.min(ca, cb);
    visit(c, va, vb);
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
  }
}
