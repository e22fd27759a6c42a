import type { Rng } from '../../util/random.js';

export interface FederatedOptions {
  /** Prompts trained per image, positives included (CenterNet2/APE: 50). */
  numSampleCats: number;
}

/**
 * The federated loss's per-image prompt subset (CenterNet2's get_fed_loss_inds): every category
 * present, every category verified absent (LVIS neg_category_ids), then more drawn without
 * replacement with probability proportional to `weights` (image_count^0.5) until
 * `numSampleCats` are chosen. Returns 1/0 weights per prompt.
 */
export function federatedPromptWeights(
  present: Iterable<number>,
  verifiedNegative: Iterable<number>,
  weights: Float32Array,
  options: FederatedOptions,
  rng: Rng,
): Float32Array {
  const n = weights.length;
  const chosen = new Float32Array(n);
  let count = 0;
  for (const c of [...present, ...verifiedNegative]) {
    if (c < 0 || c >= n) throw new Error(`federatedPromptWeights: prompt ${c} out of range ${n}`);
    if (!chosen[c]) {
      chosen[c] = 1;
      count++;
    }
  }
  let remainingWeight = 0;
  for (let c = 0; c < n; c++) if (!chosen[c]) remainingWeight += Math.max(weights[c]!, 0);
  while (count < options.numSampleCats && remainingWeight > 1e-12) {
    let r = rng.next() * remainingWeight;
    let pick = -1;
    for (let c = 0; c < n; c++) {
      if (chosen[c] || weights[c]! <= 0) continue;
      pick = c;
      r -= weights[c]!;
      if (r < 0) break;
    }
    if (pick < 0) break;
    chosen[pick] = 1;
    remainingWeight -= weights[pick]!;
    count++;
  }
  return chosen;
}

/** Sampling weights from LVIS image counts (sqrt); categories without a count get the mean. */
export function federatedWeightsFromCounts(imageCounts: Array<number | undefined>): Float32Array {
  const known = imageCounts.filter((c): c is number => c !== undefined);
  const fallback = known.length ? known.reduce((a, b) => a + b, 0) / known.length : 1;
  return Float32Array.from(imageCounts, (c) => Math.sqrt(Math.max(c ?? fallback, 0)));
}
