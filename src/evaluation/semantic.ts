/**
 * Semantic segmentation metrics with detectron2's SemSegEvaluator definitions: a confusion
 * matrix accumulated over images, then per-class IoU and accuracy, mean IoU, frequency-weighted
 * IoU, pixel accuracy and mean class accuracy. A class counts only where it occurs in the ground
 * truth: classes absent from it get NaN and are left out of the means.
 */

export interface SemanticEvaluatorOptions {
  numClasses: number;
  /** Ground-truth value that marks pixels to ignore (default 255). */
  ignoreLabel?: number;
  /** Names for the per-class entries of detectron2Report (default "0", "1", ...). */
  classNames?: readonly string[];
}

/** Fractions in [0, 1] (detectron2 reports the same numbers times 100). */
export interface SemanticMetrics {
  mIoU: number;
  fwIoU: number;
  pixelAccuracy: number;
  meanClassAccuracy: number;
  /** NaN for classes that never occur in the ground truth. */
  perClassIoU: number[];
  perClassAccuracy: number[];
  /** Pixels evaluated (ground truth not ignored). */
  pixels: number;
}

export class SemanticEvaluator {
  readonly numClasses: number;
  readonly ignoreLabel: number;
  readonly classNames: readonly string[];
  /** (N+1) x (N+1), row = prediction, column = ground truth; row/column N collect ignored pixels. */
  readonly confusion: Float64Array;

  constructor(options: SemanticEvaluatorOptions) {
    const { numClasses } = options;
    if (!Number.isInteger(numClasses) || numClasses <= 0)
      throw new Error(`SemanticEvaluator: numClasses must be a positive integer, got ${numClasses}`);
    this.numClasses = numClasses;
    this.ignoreLabel = options.ignoreLabel ?? 255;
    if (options.classNames && options.classNames.length !== numClasses) {
      throw new Error(`SemanticEvaluator: ${options.classNames.length} class names for ${numClasses} classes`);
    }
    this.classNames = options.classNames ?? Array.from({ length: numClasses }, (_, i) => String(i));
    this.confusion = new Float64Array((numClasses + 1) * (numClasses + 1));
  }

  /** Adds one image: predicted class per pixel and ground truth, same size, row-major. */
  add(pred: ArrayLike<number>, gt: ArrayLike<number>, source = 'image'): void {
    if (pred.length !== gt.length)
      throw new Error(`SemanticEvaluator: ${source}: prediction has ${pred.length} pixels, ground truth ${gt.length}`);
    const n = this.numClasses;
    const stride = n + 1;
    // Validate first so a bad image leaves the matrix untouched.
    for (let i = 0; i < pred.length; i++) {
      const p = pred[i]!;
      const g = gt[i]!;
      if (!(Number.isInteger(p) && p >= 0 && p < n)) {
        throw new Error(`SemanticEvaluator: ${source}: predicted class ${p} at pixel ${i} is outside [0, ${n})`);
      }
      if (g !== this.ignoreLabel && !(Number.isInteger(g) && g >= 0 && g < n)) {
        throw new Error(
          `SemanticEvaluator: ${source}: ground-truth value ${g} at pixel ${i} is neither a class in [0, ${n}) nor the ignore label ${this.ignoreLabel}`,
        );
      }
    }
    for (let i = 0; i < pred.length; i++) {
      const g = gt[i] === this.ignoreLabel ? n : gt[i]!;
      this.confusion[pred[i]! * stride + g]!++;
    }
  }

  /** Adds another evaluator's counts (e.g. from a worker). */
  merge(other: SemanticEvaluator): void {
    if (other.numClasses !== this.numClasses)
      throw new Error(`SemanticEvaluator: cannot merge ${other.numClasses} classes into ${this.numClasses}`);
    for (let i = 0; i < this.confusion.length; i++) this.confusion[i]! += other.confusion[i]!;
  }

  reset(): void {
    this.confusion.fill(0);
  }

  metrics(): SemanticMetrics {
    const n = this.numClasses;
    const stride = n + 1;
    const tp = new Float64Array(n);
    const gtCount = new Float64Array(n);
    const predCount = new Float64Array(n);
    for (let p = 0; p < n; p++) {
      for (let g = 0; g < n; g++) {
        const c = this.confusion[p * stride + g]!;
        gtCount[g]! += c;
        predCount[p]! += c;
        if (p === g) tp[g] = c;
      }
    }
    let pixels = 0;
    let correct = 0;
    for (let c = 0; c < n; c++) {
      pixels += gtCount[c]!;
      correct += tp[c]!;
    }
    const perClassIoU = new Array<number>(n).fill(NaN);
    const perClassAccuracy = new Array<number>(n).fill(NaN);
    let iouSum = 0;
    let iouCount = 0;
    let accSum = 0;
    let accCount = 0;
    let fw = 0;
    for (let c = 0; c < n; c++) {
      if (gtCount[c]! <= 0) continue;
      perClassAccuracy[c] = tp[c]! / gtCount[c]!;
      accSum += perClassAccuracy[c]!;
      accCount++;
      const union = gtCount[c]! + predCount[c]! - tp[c]!;
      if (union <= 0) continue;
      perClassIoU[c] = tp[c]! / union;
      iouSum += perClassIoU[c]!;
      iouCount++;
      fw += perClassIoU[c]! * (gtCount[c]! / pixels);
    }
    return {
      mIoU: iouSum / iouCount,
      fwIoU: iouCount > 0 ? fw : NaN,
      pixelAccuracy: correct / pixels,
      meanClassAccuracy: accSum / accCount,
      perClassIoU,
      perClassAccuracy,
      pixels,
    };
  }

  /** detectron2's result dict: percentages, keys mIoU, fwIoU, IoU-<name>, mACC, pACC, ACC-<name>. */
  detectron2Report(metrics: SemanticMetrics = this.metrics()): Record<string, number> {
    const report: Record<string, number> = { mIoU: 100 * metrics.mIoU, fwIoU: 100 * metrics.fwIoU };
    this.classNames.forEach((name, c) => (report[`IoU-${name}`] = 100 * metrics.perClassIoU[c]!));
    report.mACC = 100 * metrics.meanClassAccuracy;
    report.pACC = 100 * metrics.pixelAccuracy;
    this.classNames.forEach((name, c) => (report[`ACC-${name}`] = 100 * metrics.perClassAccuracy[c]!));
    return report;
  }
}
