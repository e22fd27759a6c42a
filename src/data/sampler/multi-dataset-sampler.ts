import { Rng } from '../../util/random.js';

export interface SamplerSource {
  name: string;
  size: number;
  /** Relative chance of being drawn per iteration (APE: 1.0 large sets, 0.1 small ones). */
  weight: number;
}

/** Where each dataset's walk stands; enough to continue the exact same sequence after a restart. */
export interface SamplerState {
  rng: number;
  cursors: Array<{ epoch: number; position: number }>;
}

/** One iteration's draw: the dataset, its images, and a seed for their augmentation. */
export interface SamplerDraw {
  dataset: number;
  images: number[];
  seed: number;
}

/**
 * Multi-dataset batches: each iteration draws one dataset by weight, then takes the next
 * `batchSize` images of that dataset's walk, a fresh seeded permutation per epoch. The walk is a
 * function of (seed, dataset, epoch), so the state is just cursors and the generator state.
 */
export class MultiDatasetSampler {
  private readonly rng: Rng;
  private cursors: Array<{ epoch: number; position: number }>;
  private readonly orders = new Map<number, { epoch: number; order: Int32Array }>();
  private readonly cumulative: number[];

  constructor(
    private readonly sources: readonly SamplerSource[],
    private readonly batchSize: number,
    private readonly seed: number,
  ) {
    if (sources.length === 0) throw new Error('MultiDatasetSampler: no datasets');
    for (const s of sources) {
      if (!(s.weight > 0) || !Number.isFinite(s.weight))
        throw new Error(`MultiDatasetSampler: dataset '${s.name}' needs a positive weight, got ${s.weight}`);
      if (s.size <= 0) throw new Error(`MultiDatasetSampler: dataset '${s.name}' has no images`);
    }
    this.rng = new Rng(seed);
    this.cursors = sources.map(() => ({ epoch: 0, position: 0 }));
    let total = 0;
    this.cumulative = sources.map((s) => (total += s.weight));
  }

  next(): SamplerDraw {
    const r = this.rng.next() * this.cumulative[this.cumulative.length - 1]!;
    let dataset = this.cumulative.findIndex((c) => r < c);
    if (dataset < 0) dataset = this.sources.length - 1;
    const images: number[] = [];
    const cursor = this.cursors[dataset]!;
    for (let i = 0; i < this.batchSize; i++) {
      if (cursor.position >= this.sources[dataset]!.size) {
        cursor.epoch++;
        cursor.position = 0;
      }
      images.push(this.order(dataset, cursor.epoch)[cursor.position++]!);
    }
    return { dataset, images, seed: this.rng.seed() };
  }

  getState(): SamplerState {
    return { rng: this.rng.getState(), cursors: this.cursors.map((c) => ({ ...c })) };
  }

  setState(state: SamplerState): void {
    if (state.cursors.length !== this.sources.length) {
      throw new Error(
        `MultiDatasetSampler: saved state has ${state.cursors.length} datasets, the config has ${this.sources.length}`,
      );
    }
    this.rng.setState(state.rng);
    this.cursors = state.cursors.map((c) => ({ ...c }));
  }

  private order(dataset: number, epoch: number): Int32Array {
    const cached = this.orders.get(dataset);
    if (cached && cached.epoch === epoch) return cached.order;
    const n = this.sources[dataset]!.size;
    const order = Int32Array.from({ length: n }, (_, i) => i);
    const rng = new Rng((this.seed ^ Math.imul(dataset + 1, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
    this.orders.set(dataset, { epoch, order });
    return order;
  }
}
