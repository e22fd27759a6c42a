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
  // Runs that cover different totals would leave one side exhausted and the walk spinning on
  // zero-length stretches; maskApi.c assumes this never happens, external data can make it happen.
  const totalA = a.reduce((s, c) => s + c, 0);
  const totalB = b.reduce((s, c) => s + c, 0);
  if (totalA !== totalB)
    throw new Error(`RLE runs cover ${totalA} and ${totalB} pixels: the masks do not have the same size`);
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
      ca = a[ia++]!;
      va = !va;
    }
    ct += ca;
    cb -= c;
    if (!cb && ib < b.length) {
      cb = b[ib++]!;
      vb = !vb;
    }
    ct += cb;
  }
}
