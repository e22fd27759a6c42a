/** COCOeval's default detection parameters (pycocotools Params.setDetParams). */
export interface CocoEvalParams {
  imgIds: number[];
  catIds: number[];
  /** T IoU thresholds 0.50:0.05:0.95. */
  iouThrs: number[];
  /** R recall points 0:0.01:1 at which precision is interpolated. */
  recThrs: number[];
  /** M = 3 per-image detection limits, ascending (summarize reports each). */
  maxDets: [number, number, number];
  /** A area ranges [min, max] in pixels, inclusive. */
  areaRanges: [number, number][];
  areaLabels: string[];
}

/** numpy.linspace with endpoint: start + i * step, the last value set to stop exactly (so thresholds compare equal to the reference's). */
export function linspace(start: number, stop: number, num: number): number[] {
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

export function defaultCocoParams(imgIds: number[], catIds: number[]): CocoEvalParams {
  return {
    imgIds,
    catIds,
    iouThrs: linspace(0.5, 0.95, Math.round((0.95 - 0.5) / 0.05) + 1),
    recThrs: linspace(0, 1, Math.round(1 / 0.01) + 1),
    maxDets: [1, 10, 100],
    areaRanges: [
      [0, 1e10],
      [0, 32 ** 2],
      [32 ** 2, 96 ** 2],
      [96 ** 2, 1e10],
    ],
    areaLabels: ['all', 'small', 'medium', 'large'],
  };
}
