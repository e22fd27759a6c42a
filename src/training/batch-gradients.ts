import { tf } from '../engine/engine.js';
import type { TrainingBatch } from '../data/batch.js';
import type { ApeRawOutput, ApeNetwork, PromptInput } from '../modeling/ape-network.js';
import { Rng } from '../util/random.js';
import { denoisingBatch, type DenoisingBatch } from './denoising.js';
import {
  computeLosses,
  wantsPixelClass,
  wantsSeparation,
  type CriterionConfig,
  type TrainingPredictions,
} from './criterion.js';
import { getOrThrow } from '../util/checked.js';

/** Mixed into the step generator's state for the denoising queries' own generator. */
const DENOISING_STREAM = 0x636e5f31;

/** Extra negative prompts for a sentence batch: N embeddings of `dim` values, back to back. */
export interface NegativeEmbeddings {
  data: Float32Array;
  count: number;
  dim: number;
}

/** The gradients of one batch (read back to the host, by parameter name) and its loss values. */
export interface MicroBatchResult {
  grads: Map<string, Float32Array>;
  /** Unweighted terms and 'total'. */
  losses: Record<string, number>;
  /** Milliseconds in the network's forward, the criterion, and the backward pass. */
  phaseMs: { forward: number; losses: number; backward: number };
}

/**
 * Forward, losses and backward of one batch for the trainable parameters `params` (name ->
 * variable). Vocabulary batches prompt with the dataset's names (class-agnostic ones, which have
 * none, with one placeholder name whose logits no loss reads); sentence batches with their
 * sentences plus the negatives, which the network fuses like sentences.
 */
export function batchGradients(
  network: ApeNetwork,
  params: Map<string, tf.Variable>,
  batch: TrainingBatch,
  negatives: NegativeEmbeddings | null,
  criterion: CriterionConfig,
  rng: Rng,
): MicroBatchResult {
  const nameOf = new Map([...params].map(([name, v]) => [v.name, name]));
  if (batch.promptKind === 'sentence' && batch.prompts.length === 0 && !(negatives && negatives.count > 0)) {
    // Cropping removed every referred object and the bank is empty: nothing to classify against.
    const switches = { ...batch.switches, decoderClass: false };
    if (!switches.boxes && !switches.masks && !switches.encoder)
      return { grads: new Map(), losses: { total: 0 }, phaseMs: { forward: 0, losses: 0, backward: 0 } };
    batch = { ...batch, promptKind: 'vocabulary', switches };
  }
  const s = batch.size;
  const images = tf.tensor4d(batch.images, [batch.batchSize, s, s, 3]);
  const extra = negatives && negatives.count > 0 ? tf.tensor2d(negatives.data, [negatives.count, negatives.dim]) : null;
  const prompts: PromptInput =
    batch.promptKind === 'sentence'
      ? { sentences: batch.prompts, extraSentenceEmbeddings: extra }
      : { vocabulary: batch.prompts.length ? batch.prompts : ['object'] };
  // From a generator derived from the step's without drawing from it: turning the queries on
  // leaves the step's other draws (drop path, point sampling) as they were.
  const denoising = criterion.denoising
    ? denoisingBatch(
        batch.targets,
        Math.max(1, batch.prompts.length),
        network.config.transformer.proposals.numQueries,
        criterion.denoising,
        new Rng((rng.getState() ^ DENOISING_STREAM) >>> 0),
      )
    : null;
  const losses: Record<string, number> = {};
  const t0 = performance.now();
  let t1 = t0;
  let t2 = t0;
  const { value, grads } = tf.variableGrads(() => {
    const out = network.forward({ images, sizes: batch.sizes }, prompts, {
      training: true,
      rng,
      layers: 'all',
      masks: criterion.maskLayers,
      pixelLogits: wantsPixelClass(criterion, batch.switches),
      textEmbeddings: wantsSeparation(criterion),
      denoising: denoising?.input ?? null,
    });
    t1 = performance.now();
    const result = computeLosses(trainingPredictions(out, denoising), batch.targets, batch.switches, criterion, rng);
    for (const [name, t] of result.terms) losses[name] = t.dataSync()[0]!;
    t2 = performance.now();
    return result.total;
  }, [...params.values()]);
  losses.total = value.dataSync()[0]!;
  const phaseMs = { forward: t1 - t0, losses: t2 - t1, backward: performance.now() - t2 };
  value.dispose();
  images.dispose();
  extra?.dispose();
  const named = new Map<string, Float32Array>();
  for (const [id, g] of Object.entries(grads)) {
    named.set(getOrThrow(nameOf, id, 'parameter names by variable'), g.dataSync() as Float32Array);
    g.dispose();
  }
  return { grads: named, losses, phaseMs };
}

/** The criterion's view of the network's raw output (and of its denoising queries, when it ran some). */
export function trainingPredictions(out: ApeRawOutput, denoising: DenoisingBatch | null = null): TrainingPredictions {
  const anchors = out.encoder.anchors;
  const anchorBoxes = anchors.boxes.slice();
  for (let i = 0; i < anchors.valid.length; i++) if (!anchors.valid[i]) anchorBoxes.fill(0, i * 4 + 2, i * 4 + 4);
  return {
    layers: out.layers.map((l) => ({ logits: l.logits, boxes: l.boxes, ...(l.masks ? { masks: l.masks } : {}) })),
    encoder: { logits: out.encoder.logits, boxes: out.encoder.boxes, anchors: anchorBoxes },
    references: out.references[0],
    textEmbeddings: out.textEmbeddings,
    pixelLogits: out.pixelLogits,
    denoising:
      denoising && out.denoising
        ? {
            layers: out.denoising.map((l) => ({
              logits: l.logits,
              boxes: l.boxes,
              ...(l.masks ? { masks: l.masks } : {}),
            })),
            matches: denoising.matches,
            groups: denoising.groups,
          }
        : null,
  };
}
