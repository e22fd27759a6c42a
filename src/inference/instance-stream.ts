import { boxIou } from '../structures/box-iou.js';
import { queryBox, selectInstances, type InstancePick, type InstanceSelection } from './instances.js';

/**
 * selectInstances over prompt columns that arrive a chunk at a time. Class-wise NMS only compares
 * pairs of the same prompt, so each chunk's own selection holds every pair of its prompts that
 * the whole selection can keep; the whole selection is the best topK of those, in the order
 * selectInstances visits pairs (score down, then query, then prompt). Once topK are kept, a
 * chunk's pairs below the K-th kept score cannot enter, which bounds the work per chunk.
 */
export class InstanceStream {
  private kept: InstancePick[] = [];
  /** IoU of query pairs (row-major [Q, Q], NaN until computed): every chunk's NMS compares the same boxes. */
  private readonly overlaps: Float64Array;

  constructor(
    private readonly numQueries: number,
    private readonly numPrompts: number,
    /** [Q * 4] xyxy boxes of the queries. */
    private readonly boxes: Float32Array,
    private readonly options: InstanceSelection,
  ) {
    this.overlaps = new Float64Array(numQueries * numQueries).fill(Number.NaN);
  }

  private readonly iou = (a: number, b: number): number => {
    const at = a * this.numQueries + b;
    let v = this.overlaps[at]!;
    if (Number.isNaN(v)) {
      v = boxIou(queryBox(this.boxes, a), queryBox(this.boxes, b));
      this.overlaps[at] = v;
    }
    return v;
  };

  /**
   * scores [Q, count] (row per query) of prompts start .. start + count - 1; `promptBest`: each
   * prompt's best score over the queries, when known (lets the selection skip most prompts).
   */
  add(scores: Float32Array, start: number, count: number, promptBest?: Float32Array): void {
    if (start < 0 || start + count > this.numPrompts)
      throw new Error(`InstanceStream: prompts ${start}..${start + count - 1} outside 0..${this.numPrompts - 1}`);
    const { topK } = this.options;
    const floor = this.kept.length >= topK ? this.kept[topK - 1]!.score : -Infinity;
    const picks = selectInstances(scores, this.numQueries, count, this.boxes, {
      ...this.options,
      floor,
      iou: this.iou,
      promptBest,
    });
    if (picks.length === 0) return;
    const p = this.numPrompts;
    for (const pick of picks) this.kept.push({ ...pick, prompt: pick.prompt + start });
    this.kept.sort((a, b) => b.score - a.score || a.query * p + a.prompt - (b.query * p + b.prompt));
    if (this.kept.length > topK) this.kept.length = topK;
  }

  picks(): InstancePick[] {
    return this.kept.slice();
  }
}
