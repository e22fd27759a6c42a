/** Linear probes: how much of a class a feature carries (the diagnostic benches, the pretraining probe). */

/** Solves (X^T X + I) W = X^T Y for standardised features plus a bias, by Gauss-Jordan elimination. */
export function ridgeFit(
  rows: Float32Array[],
  labels: number[],
  classes: number,
): { predict(x: Float32Array): Float64Array } {
  const d = rows[0]!.length;
  const mean = new Float64Array(d);
  const sd = new Float64Array(d);
  for (const r of rows) r.forEach((v, i) => (mean[i]! += v / rows.length));
  for (const r of rows) r.forEach((v, i) => (sd[i]! += (v - mean[i]!) ** 2 / rows.length));
  const z = (r: Float32Array) => {
    const out = new Float64Array(d + 1);
    r.forEach((v, i) => (out[i] = (v - mean[i]!) / Math.sqrt(sd[i]! + 1e-6)));
    out[d] = 1;
    return out;
  };
  const e = d + 1;
  const a = Array.from({ length: e }, () => new Float64Array(e));
  const b = Array.from({ length: e }, () => new Float64Array(classes));
  rows.forEach((r, n) => {
    const x = z(r);
    for (let i = 0; i < e; i++) {
      for (let j = 0; j < e; j++) a[i]![j]! += x[i]! * x[j]!;
      b[i]![labels[n]!]! += x[i]!;
    }
  });
  for (let i = 0; i < e; i++) a[i]![i]! += 1;
  for (let c = 0; c < e; c++) {
    let p = c;
    for (let r = c + 1; r < e; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[p]![c]!)) p = r;
    [a[c], a[p]] = [a[p]!, a[c]!];
    [b[c], b[p]] = [b[p]!, b[c]!];
    for (let r = 0; r < e; r++) {
      const f = r === c ? 0 : a[r]![c]! / a[c]![c]!;
      if (!f) continue;
      for (let j = c; j < e; j++) a[r]![j]! -= f * a[c]![j]!;
      for (let j = 0; j < classes; j++) b[r]![j]! -= f * b[c]![j]!;
    }
  }
  const w = b.map((row, i) => row.map((v) => v / a[i]![i]!));
  return {
    predict(r) {
      const x = z(r);
      const out = new Float64Array(classes);
      for (let i = 0; i < e; i++) for (let c = 0; c < classes; c++) out[c]! += x[i]! * w[i]![c]!;
      return out;
    },
  };
}

/** Index of the largest score among `group`. */
export function bestOf(scores: ArrayLike<number>, group: number[]): number {
  return group.reduce((best, c) => (scores[c]! > scores[best]! ? c : best), group[0]!);
}
