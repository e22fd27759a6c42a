import { selectInstances, type InstancePick, type InstanceSelection } from './instances.js';

/**
 * selectInstances over prompt columns that arrive a chunk at a time. Class-wise NMS only compares
 * pairs of the same prompt, so each chunk's own selection holds every pair of its prompts that
 * the whole selection can keep; the whole selection is the best topK of those, in the order
 * selectInstances visits pairs (score down, then query, then prompt). Once topK are kept, a
 * chunk's pairs below the K-th kept score cannot enter, which bounds the work per chunk.
 */
export class InstanceStream {
  private kept: InstancePick[] = [];

  constructor(
    private readonly numQueries: number,
    private readonly numPrompts: number,
    /** [Q * 4] xyxy boxes of the queries. */
    private readonly boxes: Float32Array,
    private readonly options: InstanceSelection,
  ) {}

  /** scores [Q, count] (row per query) of prompts start .. start + count - 1. */
  add(scores: Float32Array, start: number, count: number): void {
    if (start < 0 || start + count > this.numPrompts)
      throw new Error(`InstanceStream: prompts ${start}..${start + count - 1} outside 0..${this.numPrompts - 1}`);
    const { topK } = this.options;
    const floor = this.kept.length >= topK ? this.kept[topK - 1]!.score : -Infinity;
    const picks = selectInstances(scores, this.numQueries, count, this.boxes, { ...this.options, floor });
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
