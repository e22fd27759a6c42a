import type { CategoryRecord, DatasetKind, DatasetRecords, ImageRecord } from './types.js';
import { federatedWeightsFromCounts } from './mappers/federated.js';

/**
 * A dataset ready for sampling: its records plus the lookups every sample needs (category id to
 * prompt index, prompt names, stuff flags, federated sampling weights).
 */
export class TrainingDataset {
  readonly prompts: string[];
  readonly categoryIndex = new Map<number, number>();
  readonly isThing: boolean[];
  readonly federatedWeights: Float32Array;

  constructor(
    readonly name: string,
    readonly records: DatasetRecords,
  ) {
    records.categories.forEach((c: CategoryRecord, i: number) => this.categoryIndex.set(c.id, i));
    this.prompts = records.categories.map((c) => c.name);
    this.isThing = records.categories.map((c) => c.isThing);
    this.federatedWeights = federatedWeightsFromCounts(records.categories.map((c) => c.imageCount));
  }

  get kind(): DatasetKind {
    return this.records.kind;
  }

  get size(): number {
    return this.records.images.length;
  }

  image(i: number): ImageRecord {
    const r = this.records.images[i];
    if (!r) throw new Error(`${this.name}: no image ${i} (has ${this.size})`);
    return r;
  }
}
