import type { Accumulated } from './accumulate.js';
import type { CocoEvalParams } from './params.js';

/** The twelve standard numbers, in pycocotools' order. */
export const COCO_STAT_NAMES = [
  'AP',
  'AP50',
  'AP75',
  'APs',
  'APm',
  'APl',
  'AR1',
  'AR10',
  'AR100',
  'ARs',
  'ARm',
  'ARl',
] as const;

/**
 * numpy's float64 sum (pairwise summation in blocks of 8, recursion above 128 values), so means
 * agree with the reference to the last bit rather than to rounding noise.
 */
export function pairwiseSum(values: ArrayLike<number>, start = 0, n = values.length): number {
  if (n < 8) {
    let s = 0;
    for (let i = 0; i < n; i++) s += values[start + i]!;
    return s;
  }
  if (n <= 128) {
    const r = [0, 1, 2, 3, 4, 5, 6, 7].map((j) => values[start + j]);
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j]! += values[start + i + j]!;
    let s = r[0]! + r[1]! + (r[2]! + r[3]!) + (r[4]! + r[5]! + (r[6]! + r[7]!));
    for (; i < n; i++) s += values[start + i]!;
    return s;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(values, start, n2) + pairwiseSum(values, start + n2, n - n2);
}

/** Mean of the values above -1 (the entries that exist); -1 when there are none. */
function meanOfValid(values: number[]): number {
  const valid = values.filter((v) => v > -1);
  return valid.length === 0 ? -1 : pairwiseSum(valid) / valid.length;
}

/** Python's '{:0.3f}': rounds the exact binary value with ties to even, where JavaScript's toFixed rounds ties up. */
export function formatFixed3(x: number): string {
  // toFixed(100) spells out the exact value of every double this can meet (|x| >= 2^-47; smaller ones print 0.000 anyway).
  const exact = Math.abs(x).toFixed(100);
  const cut = exact.indexOf('.') + 4;
  if (/^50*$/.test(exact.slice(cut)) && Number(exact[cut - 1]) % 2 === 0)
    return (x < 0 ? '-' : '') + exact.slice(0, cut);
  return x.toFixed(3);
}

export interface Summary {
  stats: number[];
  lines: string[];
}

/** The twelve summary numbers and their standard text lines (pycocotools summarize for 'bbox'/'segm'). */
export function summarize(acc: Accumulated, params: CocoEvalParams): Summary {
  const { T, R, K, A, M } = acc.dims;
  const [d1, d10, d100] = params.maxDets;
  const lines: string[] = [];
  const one = (ap: boolean, iouThr: number | null, areaLabel: string, maxDets: number): number => {
    const a = params.areaLabels.indexOf(areaLabel);
    const m = params.maxDets.indexOf(maxDets);
    // Exact comparison as the reference does; a threshold not in the list selects nothing.
    const ts = iouThr === null ? [...Array(T).keys()] : params.iouThrs.flatMap((v, t) => (v === iouThr ? [t] : []));
    const values: number[] = [];
    if (a >= 0 && m >= 0) {
      for (const t of ts) {
        if (ap) {
          for (let r = 0; r < R; r++)
            for (let k = 0; k < K; k++) values.push(acc.precision[(((t * R + r) * K + k) * A + a) * M + m]!);
        } else {
          for (let k = 0; k < K; k++) values.push(acc.recall[((t * K + k) * A + a) * M + m]!);
        }
      }
    }
    const mean = meanOfValid(values);
    const title = ap ? 'Average Precision' : 'Average Recall';
    const kind = ap ? '(AP)' : '(AR)';
    const iou =
      iouThr === null ? `${params.iouThrs[0]!.toFixed(2)}:${params.iouThrs[T - 1]!.toFixed(2)}` : iouThr.toFixed(2);
    lines.push(
      ` ${title.padEnd(18)} ${kind} @[ IoU=${iou.padEnd(9)} | area=${areaLabel.padStart(6)} | maxDets=${String(maxDets).padStart(3)} ] = ${formatFixed3(mean)}`,
    );
    return mean;
  };
  const stats = [
    one(true, null, 'all', d100),
    one(true, 0.5, 'all', d100),
    one(true, 0.75, 'all', d100),
    one(true, null, 'small', d100),
    one(true, null, 'medium', d100),
    one(true, null, 'large', d100),
    one(false, null, 'all', d1),
    one(false, null, 'all', d10),
    one(false, null, 'all', d100),
    one(false, null, 'small', d100),
    one(false, null, 'medium', d100),
    one(false, null, 'large', d100),
  ];
  return { stats, lines };
}
