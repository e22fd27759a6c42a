import { batchedNms } from '../structures/nms.js';

export type ProposalSelection = 'level-nms' | 'topk';

export interface ProposalSelectionConfig {
  /** 'level-nms': DETA's per-level top-k, NMS per level and level-balanced pick; 'topk': plain top-k. */
  mode: ProposalSelection;
  numQueries: number;
  preNmsTopk: number;
  nmsThreshold: number;
}

/** Indices of `k` largest values, descending (ties: lower index first), among `candidates`. */
function topIndices(values: ArrayLike<number>, candidates: number[], k: number): number[] {
  return candidates.sort((i, j) => values[j]! - values[i]! || i - j).slice(0, k);
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/**
 * Picks the decoder's initial queries for one image from the encoder's per-token proposals.
 * logits [S] (objectness), boxesUnact [S, 4] (cxcywh before sigmoid), levelIds [S].
 * Returns numQueries token indices, in the order the reference uses them.
 */
export function selectProposals(
  logits: ArrayLike<number>,
  boxesUnact: ArrayLike<number>,
  levelIds: ArrayLike<number>,
  numLevels: number,
  config: ProposalSelectionConfig,
): Int32Array {
  const s = logits.length;
  const k = config.numQueries;
  if (s < k)
    throw new Error(`selectProposals: ${s} tokens cannot give ${k} queries; use a larger input or fewer queries`);
  const all = Array.from({ length: s }, (_, i) => i);
  if (config.mode === 'topk') return Int32Array.from(topIndices(logits, all, k));

  const byLevel: number[][] = Array.from({ length: numLevels }, () => []);
  for (let i = 0; i < s; i++) byLevel[levelIds[i]!]!.push(i);
  const pre = byLevel.flatMap((members) => topIndices(logits, members, config.preNmsTopk));
  const boxes = new Float32Array(pre.length * 4);
  pre.forEach((t, j) => {
    const coordinate = (c: number) => sigmoid(boxesUnact[t * 4 + c]!);
    const [cx, cy, w, h] = [coordinate(0), coordinate(1), coordinate(2), coordinate(3)];
    const clip = (v: number) => Math.min(Math.max(v, 0), 1);
    boxes.set([clip(cx - w / 2), clip(cy - h / 2), clip(cx + w / 2), clip(cy + h / 2)], j * 4);
  });
  const kept = batchedNms(
    boxes,
    pre.map((t) => logits[t]!),
    pre.map((t) => levelIds[t]!),
    config.nmsThreshold,
  ).map((j) => pre[j]!);
  if (kept.length < k) return Int32Array.from(topIndices(logits, all, k));

  // Level-balanced: the best floor(k / levels) of each level, then the best of the rest, in score order.
  const perLevel = Math.floor(k / numLevels);
  const counts = new Array<number>(numLevels).fill(0);
  const take = kept.map((t) => {
    const l = levelIds[t]!;
    if (counts[l]! < perLevel) {
      counts[l]!++;
      return true;
    }
    return false;
  });
  let total = take.filter(Boolean).length;
  for (let j = 0; j < kept.length && total < k; j++) {
    if (!take[j]) {
      take[j] = true;
      total++;
    }
  }
  return Int32Array.from(kept.filter((_, j) => take[j]));
}

/**
 * The decoder's queries of a batch: per image the selected token indices, and all picks as rows
 * of the flattened [B * S] tokens. logits [B, S] (objectness), boxesUnact [B, S, 4].
 */
export function selectQueries(
  logits: ArrayLike<number> & { subarray(begin: number, end: number): ArrayLike<number> },
  boxesUnact: ArrayLike<number> & { subarray(begin: number, end: number): ArrayLike<number> },
  levelIds: ArrayLike<number>,
  batch: number,
  numLevels: number,
  config: ProposalSelectionConfig,
): { selected: Int32Array[]; flatIndex: Int32Array } {
  const s = logits.length / batch;
  const q = config.numQueries;
  const flatIndex = new Int32Array(batch * q);
  const selected = Array.from({ length: batch }, (_, i) => {
    const picks = selectProposals(
      logits.subarray(i * s, (i + 1) * s),
      boxesUnact.subarray(i * s * 4, (i + 1) * s * 4),
      levelIds,
      numLevels,
      config,
    );
    picks.forEach((t, j) => (flatIndex[i * q + j] = i * s + t));
    return picks;
  });
  return { selected, flatIndex };
}
