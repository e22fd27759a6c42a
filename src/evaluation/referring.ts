/**
 * Referring-expression metrics (RefCOCO/+/g style), one prediction per sentence: top-1 box
 * precision at IoU thresholds 0.5..0.9 and, where masks are given, mean IoU, cumulative
 * ("overall") IoU and mask precision. Definitions follow APE's RefCOCO evaluator: a hit is
 * IoU > threshold (strict; `inclusive` switches to >=, as MDETR-style evaluators count),
 * box IoU on continuous coordinates, mask IoU 0 when both masks are empty.
 */
import { boxIou } from '../structures/box-iou.js';
import { maskIntersectionUnion } from '../structures/bitmap.js';
import type { BoxLike } from '../structures/boxes.js';

export interface ReferringSample {
  /** Top-1 predicted box, xyxy pixels; null when the model returned nothing (IoU 0). */
  predBox: readonly number[] | null;
  gtBox: readonly number[];
  /** Predicted binary mask (full image, row-major); null counts as an empty prediction. */
  predMask?: ArrayLike<number> | null;
  /** Ground-truth mask, same size as predMask; samples without one are left out of mask metrics. */
  gtMask?: ArrayLike<number>;
  /** Named in error messages. */
  id?: string | number;
}

export interface ReferringOptions {
  /** Default [0.5, 0.6, 0.7, 0.8, 0.9]. */
  thresholds?: readonly number[];
  /** Count IoU == threshold as a hit (default false: strictly greater, as APE). */
  inclusive?: boolean;
}

/** Fractions in [0, 1]; precision is keyed by threshold as written ("0.5", "0.6", ...). */
export interface ReferringMetrics {
  count: number;
  box: { precision: Record<string, number>; meanIoU: number };
  mask?: { count: number; precision: Record<string, number>; meanIoU: number; cumulativeIoU: number };
}

export const DEFAULT_REFERRING_THRESHOLDS: readonly number[] = [0.5, 0.6, 0.7, 0.8, 0.9];

function checkBox(box: readonly number[], what: string): asserts box is BoxLike {
  if (box.length !== 4 || box.some((v) => !Number.isFinite(v)))
    throw new Error(`${what} must be 4 finite numbers [x1, y1, x2, y2], got ${JSON.stringify(box)}`);
}

export class ReferringEvaluator {
  readonly thresholds: readonly number[];
  readonly inclusive: boolean;
  private readonly boxIous: number[] = [];
  private readonly maskIous: number[] = [];
  private intersection = 0;
  private union = 0;

  constructor(options: ReferringOptions = {}) {
    this.thresholds = options.thresholds ?? DEFAULT_REFERRING_THRESHOLDS;
    this.inclusive = options.inclusive ?? false;
  }

  add(sample: ReferringSample): void {
    const name = `referring sample ${sample.id ?? this.boxIous.length}`;
    checkBox(sample.gtBox, `${name}: gtBox`);
    if (sample.predBox !== null) checkBox(sample.predBox, `${name}: predBox`);
    let maskIou: number | undefined;
    let counts: { intersection: number; union: number } | undefined;
    if (sample.gtMask !== undefined) {
      const gt = sample.gtMask;
      const pred = sample.predMask ?? new Uint8Array(gt.length);
      if (pred.length !== gt.length)
        throw new Error(`${name}: predMask has ${pred.length} pixels, gtMask ${gt.length}`);
      counts = maskIntersectionUnion(pred, gt);
      maskIou = counts.union === 0 ? 0 : counts.intersection / counts.union;
    } else if (sample.predMask) {
      throw new Error(`${name}: predMask given without gtMask`);
    }
    this.boxIous.push(sample.predBox === null ? 0 : boxIou(sample.predBox, sample.gtBox));
    if (maskIou !== undefined && counts) {
      this.maskIous.push(maskIou);
      this.intersection += counts.intersection;
      this.union += counts.union;
    }
  }

  private precision(ious: readonly number[]): Record<string, number> {
    const out: Record<string, number> = {};
    for (const t of this.thresholds) {
      const hits = ious.filter((iou) => (this.inclusive ? iou >= t : iou > t)).length;
      out[String(t)] = ious.length > 0 ? hits / ious.length : NaN;
    }
    return out;
  }

  metrics(): ReferringMetrics {
    const mean = (xs: readonly number[]) => (xs.length > 0 ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
    const result: ReferringMetrics = {
      count: this.boxIous.length,
      box: { precision: this.precision(this.boxIous), meanIoU: mean(this.boxIous) },
    };
    if (this.maskIous.length > 0) {
      result.mask = {
        count: this.maskIous.length,
        precision: this.precision(this.maskIous),
        meanIoU: mean(this.maskIous),
        cumulativeIoU: this.union > 0 ? this.intersection / this.union : 0,
      };
    }
    return result;
  }

  /** APE's result keys, in percent: P@<t> for boxes; oIoU and mIoU for masks. */
  apeReport(metrics: ReferringMetrics = this.metrics()): Record<string, number> {
    const report: Record<string, number> = {};
    for (const [t, p] of Object.entries(metrics.box.precision)) report[`P@${t}`] = 100 * p;
    if (metrics.mask) {
      report.oIoU = 100 * metrics.mask.cumulativeIoU;
      report.mIoU = 100 * metrics.mask.meanIoU;
    }
    return report;
  }
}

export function evaluateReferring(
  samples: Iterable<ReferringSample>,
  options: ReferringOptions = {},
): ReferringMetrics {
  const evaluator = new ReferringEvaluator(options);
  for (const s of samples) evaluator.add(s);
  return evaluator.metrics();
}
