import { tf } from '../engine/engine.js';
import type { ImageTargets } from '../data/batch.js';
import type { LossSwitches } from '../data/sampler/loss-switches.js';
import type { Rng } from '../util/random.js';
import { decoderAssignOptions, encoderAssignOptions, iouAssign } from './assign/deta-assigner.js';
import { hungarianMatch, type MatchIndices } from './assign/hungarian-matcher.js';
import { DEFAULT_MATCH_COST, type MatchCostWeights } from './assign/match-cost.js';
import { boxL1Loss, giouLoss } from './losses/box.js';
import { sigmoidFocalLoss } from './losses/focal.js';
import { diceLoss, maskBceLoss } from './losses/mask.js';
import type { DenoisingConfig } from './denoising.js';
import { pixelClassLoss } from './losses/pixel-class.js';
import { promptSeparationLoss } from './losses/prompt-separation.js';
import { downsampleMaskArea } from './losses/mask-targets.js';
import {
  pointSampleMasks,
  pointSampleTensor,
  uncertainPointCoords,
  type PointSamplingOptions,
} from './losses/point-sampling.js';

/** One decoder layer's outputs. */
export interface DecoderLayerPredictions {
  /** [B, Q, P] prompt logits. */
  logits: tf.Tensor;
  /** [B, Q, 4] normalised cxcywh. */
  boxes: tf.Tensor;
  /** [B, Q, h, w] mask logits on a grid that divides the canvas. */
  masks?: tf.Tensor;
}

/** The encoder's per-token proposals (class-agnostic). */
export interface EncoderPredictions {
  /** [B, N] or [B, N, 1] objectness logits. */
  logits: tf.Tensor;
  /** [B, N, 4] normalised cxcywh. */
  boxes: tf.Tensor;
  /** Host [B, N, 4]: the fixed anchors the proposals refine (normalised cxcywh; zero size where unusable), for DETA's encoder assignment. */
  anchors?: Float32Array;
}

export interface TrainingPredictions {
  /** Every decoder layer, the last one being the model's output. */
  layers: DecoderLayerPredictions[];
  encoder?: EncoderPredictions;
  /** Host [B, Q, 4]: the decoder's initial reference boxes (cxcywh), for DETA's one-to-many assignment. */
  references?: Float32Array;
  /** The text tower's pooled prompt vectors, for the prompt-separation loss (trainable towers). */
  textEmbeddings?: { vectors: tf.Tensor2D; texts: readonly string[] } | null;
  /** [B, h*w, P] logits of the pixel embeddings, for the pixel-class loss. */
  pixelLogits?: { logits: tf.Tensor3D; grid: [number, number] } | null;
  /** The denoising queries' outputs per decoder layer, which target each positive answers for, and the group count. */
  denoising?: { layers: DecoderLayerPredictions[]; matches: MatchIndices[]; groups: number } | null;
}

export interface LossWeights {
  cls: number;
  l1: number;
  giou: number;
  mask: number;
  dice: number;
  /** The prompt-separation loss on the text tower's vectors (0 = off, as in APE's frozen tower). */
  separation: number;
  /** The pixel-class loss: the last classifier applied to the mask head's pixel embeddings (0 = off, as in APE). */
  pixelClass: number;
}

export interface CriterionConfig {
  /** 'hungarian': DETR one-to-one per layer. 'deta': one-to-many by IoU with the reference boxes. */
  assignment: 'hungarian' | 'deta';
  matchCost: MatchCostWeights;
  weights: LossWeights;
  focalAlpha: number;
  focalGamma: number;
  /** Mask losses on the last decoder layer only (APE) or on every layer that has masks. */
  maskLayers: 'last' | 'all';
  /** Compare masks at sampled points instead of every pixel of the mask grid. */
  pointSampling: PointSamplingOptions | null;
  /** Cosine below which two prompts' vectors cost the separation loss nothing. */
  separationMargin: number;
  /** Contrastive denoising queries (training/denoising.ts), or null. */
  denoising: DenoisingConfig | null;
}

export const DEFAULT_CRITERION: CriterionConfig = {
  assignment: 'hungarian',
  matchCost: DEFAULT_MATCH_COST,
  weights: { cls: 1, l1: 5, giou: 2, mask: 5, dice: 5, separation: 0, pixelClass: 0 },
  focalAlpha: 0.25,
  focalGamma: 2,
  maskLayers: 'last',
  pointSampling: null,
  separationMargin: 0.2,
  denoising: null,
};

export interface LossResult {
  /** The weighted sum to differentiate. */
  total: tf.Scalar;
  /** Unweighted terms by name ('class', 'l1', ..., 'class_0' for layer 0, 'enc_class', ...). */
  terms: Map<string, tf.Scalar>;
}

/**
 * APE's training objective: per decoder layer the focal prompt loss, L1 and GIoU box losses and
 * (last layer by default) mask BCE and dice on matched queries, plus the class-agnostic losses of
 * the encoder proposals; which of them apply is the batch's `switches`. Matching reads detached
 * values (dataSync), so this may run inside tf.variableGrads.
 */
export function computeLosses(
  pred: TrainingPredictions,
  targets: ImageTargets[],
  switches: LossSwitches,
  config: CriterionConfig,
  rng: Rng,
): LossResult {
  const terms = new Map<string, tf.Scalar>();
  const weighted: tf.Scalar[] = [];
  const add = (name: string, value: tf.Scalar, weight: number) => {
    terms.set(name, value);
    if (weight !== 0) weighted.push(tf.mul(value, tf.scalar(weight)) as tf.Scalar);
  };
  const numBoxes = Math.max(
    1,
    targets.reduce((n, t) => n + t.labels.length, 0),
  );
  const numMasks = Math.max(
    1,
    targets.reduce((n, t) => n + (t.masks ? t.masks.length : 0), 0),
  );
  const layers = pred.layers;
  if (layers.length === 0) throw new Error('computeLosses: no decoder layers');

  let shared: MatchIndices[] | null = null;
  if (config.assignment === 'deta') {
    if (!pred.references) throw new Error("computeLosses: 'deta' assignment needs the decoder's reference boxes");
    const refs = pred.references;
    const q = layers[0]!.boxes.shape[1]!;
    if (refs.length !== targets.length * q * 4)
      throw new Error(`computeLosses: ${refs.length / 4} reference boxes for ${targets.length} images of ${q} queries`);
    shared = targets.map((t, i) =>
      iouAssign(refs.subarray(i * q * 4, (i + 1) * q * 4), t.boxes, decoderAssignOptions(q), rng),
    );
  }

  layers.forEach((layer, l) => {
    const suffix = l === layers.length - 1 ? '' : `_${l}`;
    const matches = shared ?? matchLayer(layer, targets, switches, config);
    if (switches.decoderClass)
      add(`class${suffix}`, classLoss(layer.logits, targets, matches, switches, numBoxes, config), config.weights.cls);
    if (switches.boxes) {
      const [l1, giou] = boxLosses(layer.boxes, targets, matches, numBoxes);
      add(`l1${suffix}`, l1, config.weights.l1);
      add(`giou${suffix}`, giou, config.weights.giou);
    }
    const masks = switches.masks && (config.maskLayers === 'all' || l === layers.length - 1) ? layer.masks : undefined;
    if (masks && targets.some((t) => t.masks && t.labels.length > 0)) {
      const [bce, dice] = maskLosses(masks, targets, matches, numMasks, config, rng);
      add(`mask${suffix}`, bce, config.weights.mask);
      add(`dice${suffix}`, dice, config.weights.dice);
    }
  });

  // Denoising queries (DINO): the pairs are known, the losses those of matched queries, averaged
  // over the groups as well as the targets.
  const denoising = pred.denoising;
  denoising?.layers.forEach((layer, l) => {
    const { matches, groups } = denoising;
    const suffix = l === denoising.layers.length - 1 ? '' : `_${l}`;
    if (switches.decoderClass)
      add(
        `dn_class${suffix}`,
        classLoss(layer.logits, targets, matches, switches, numBoxes * groups, config),
        config.weights.cls,
      );
    if (switches.boxes) {
      const [l1, giou] = boxLosses(layer.boxes, targets, matches, numBoxes * groups);
      add(`dn_l1${suffix}`, l1, config.weights.l1);
      add(`dn_giou${suffix}`, giou, config.weights.giou);
    }
    const masks = switches.masks && (config.maskLayers === 'all' || l === layers.length - 1) ? layer.masks : undefined;
    if (masks && targets.some((t) => t.masks && t.labels.length > 0)) {
      const [bce, dice] = maskLosses(masks, targets, matches, numMasks * groups, config, rng);
      add(`dn_mask${suffix}`, bce, config.weights.mask);
      add(`dn_dice${suffix}`, dice, config.weights.dice);
    }
  });

  if (switches.encoder && pred.encoder) {
    const enc = pred.encoder;
    const [b, n] = enc.boxes.shape as [number, number, number];
    const logits = tf.reshape(enc.logits, [b, n]);
    let matches: MatchIndices[];
    if (config.assignment === 'deta' && enc.anchors) {
      const anchors = enc.anchors;
      matches = targets.map((t, i) =>
        iouAssign(anchors.subarray(i * n * 4, (i + 1) * n * 4), t.boxes, encoderAssignOptions(), rng),
      );
    } else {
      const lv = logits.dataSync() as Float32Array;
      const bv = enc.boxes.dataSync() as Float32Array;
      matches = targets.map((t, i) =>
        hungarianMatch(
          {
            logits: lv.subarray(i * n, (i + 1) * n),
            numPrompts: 1,
            boxes: bv.subarray(i * n * 4, (i + 1) * n * 4),
            numQueries: n,
          },
          { labels: new Int32Array(t.labels.length), boxes: t.boxes },
          config.matchCost,
        ),
      );
    }
    const agnostic = targets.map((t) => ({
      ...t,
      labels: new Int32Array(t.labels.length),
      promptWeights: null,
      positiveOnlyPrompts: [],
    }));
    add(
      'enc_class',
      classLoss(tf.reshape(logits, [b, n, 1]), agnostic, matches, { ...switches, federated: false }, numBoxes, config),
      config.weights.cls,
    );
    if (switches.boxes) {
      const [l1, giou] = boxLosses(enc.boxes, targets, matches, numBoxes);
      add('enc_l1', l1, config.weights.l1);
      add('enc_giou', giou, config.weights.giou);
    }
  }

  const pixels = pred.pixelLogits;
  if (pixels && wantsPixelClass(config, switches)) {
    const canvas = targets.flatMap((t) => t.masks ?? [])[0];
    if (canvas)
      add(
        'pixel_class',
        pixelClassLoss(pixels.logits, targets, Math.round(Math.sqrt(canvas.length)), pixels.grid, {
          alpha: config.focalAlpha,
          gamma: config.focalGamma,
        }),
        config.weights.pixelClass,
      );
  }
  const text = pred.textEmbeddings;
  if (wantsSeparation(config) && text && text.texts.length > 1)
    add(
      'separation',
      promptSeparationLoss(text.vectors, text.texts, config.separationMargin),
      config.weights.separation,
    );

  if (weighted.length === 0) throw new Error('computeLosses: the batch switches turn every loss off');
  return { total: tf.addN(weighted) as tf.Scalar, terms };
}

/** Whether a batch with these switches trains the pixel-class loss (it needs class labels and masks). */
export function wantsPixelClass(config: CriterionConfig, switches: LossSwitches): boolean {
  return config.weights.pixelClass > 0 && switches.decoderClass && switches.masks;
}

/** Whether the prompt-separation loss is on. */
export function wantsSeparation(config: CriterionConfig): boolean {
  return config.weights.separation > 0;
}

function matchLayer(
  layer: DecoderLayerPredictions,
  targets: ImageTargets[],
  switches: LossSwitches,
  config: CriterionConfig,
): MatchIndices[] {
  const [, q, p] = layer.logits.shape as [number, number, number];
  const logits = layer.logits.dataSync() as Float32Array;
  const boxes = layer.boxes.dataSync() as Float32Array;
  const weights = switches.decoderClass ? config.matchCost : { ...config.matchCost, cls: 0 };
  return targets.map((t, i) =>
    hungarianMatch(
      {
        logits: logits.subarray(i * q * p, (i + 1) * q * p),
        numPrompts: p,
        boxes: boxes.subarray(i * q * 4, (i + 1) * q * 4),
        numQueries: q,
      },
      t,
      weights,
    ),
  );
}

function classLoss(
  logits: tf.Tensor,
  targets: ImageTargets[],
  matches: MatchIndices[],
  switches: LossSwitches,
  numBoxes: number,
  config: CriterionConfig,
): tf.Scalar {
  const [b, q, p] = logits.shape as [number, number, number];
  const onehot = new Float32Array(b * q * p);
  matches.forEach((m, i) => {
    m.queries.forEach((query, k) => {
      const label = targets[i]!.labels[m.targets[k]!]!;
      if (label >= 0) onehot[(i * q + query) * p + label] = 1;
    });
  });
  const needWeights =
    targets.some((t) => t.promptWeights) || (switches.federated && targets.some((t) => t.positiveOnlyPrompts.length));
  let weights: tf.Tensor | undefined;
  if (needWeights) {
    const w = new Float32Array(b * q * p).fill(1);
    targets.forEach((t, i) => {
      for (let query = 0; query < q; query++) {
        const row = (i * q + query) * p;
        if (t.promptWeights) for (let c = 0; c < p; c++) w[row + c] = t.promptWeights[c] ?? 1;
        for (const c of t.positiveOnlyPrompts) w[row + c] = onehot[row + c]!;
      }
    });
    weights = tf.tensor3d(w, [b, q, p]);
  }
  return sigmoidFocalLoss(logits, tf.tensor3d(onehot, [b, q, p]), numBoxes, {
    alpha: config.focalAlpha,
    gamma: config.focalGamma,
    weights,
  });
}

/** Flat row indices (image * Q + query) of matched pairs and their target boxes. */
function gatherPairs(q: number, targets: ImageTargets[], matches: MatchIndices[], onlyWithMasks = false) {
  const rows: number[] = [];
  const boxes: number[] = [];
  const masks: Uint8Array[] = [];
  matches.forEach((m, i) => {
    const t = targets[i]!;
    if (onlyWithMasks && !t.masks) return;
    m.queries.forEach((query, k) => {
      const g = m.targets[k]!;
      rows.push(i * q + query);
      for (let c = 0; c < 4; c++) boxes.push(t.boxes[g * 4 + c]!);
      if (t.masks) masks.push(t.masks[g]!);
    });
  });
  return { rows, boxes, masks };
}

function boxLosses(
  predBoxes: tf.Tensor,
  targets: ImageTargets[],
  matches: MatchIndices[],
  numBoxes: number,
): [tf.Scalar, tf.Scalar] {
  const [b, q] = predBoxes.shape as [number, number, number];
  const { rows, boxes } = gatherPairs(q, targets, matches);
  if (rows.length === 0) {
    // No pairs: zero losses that still touch the predictions so every parameter keeps a gradient.
    const zero = tf.mul(tf.sum(predBoxes), tf.scalar(0)) as tf.Scalar;
    return [zero, tf.clone(zero)];
  }
  const matched = tf.gather(tf.reshape(predBoxes, [b * q, 4]), tf.tensor1d(rows, 'int32')) as tf.Tensor2D;
  const target = tf.tensor2d(boxes, [rows.length, 4]);
  return [boxL1Loss(matched, target, numBoxes), giouLoss(matched, target, numBoxes)];
}

function maskLosses(
  predMasks: tf.Tensor,
  targets: ImageTargets[],
  matches: MatchIndices[],
  numMasks: number,
  config: CriterionConfig,
  rng: Rng,
): [tf.Scalar, tf.Scalar] {
  const [b, q, h, w] = predMasks.shape as [number, number, number, number];
  const { rows, masks } = gatherPairs(q, targets, matches, true);
  if (rows.length === 0) {
    const zero = tf.mul(tf.sum(predMasks), tf.scalar(0)) as tf.Scalar;
    return [zero, tf.clone(zero)];
  }
  const size = Math.round(Math.sqrt(masks[0]!.length));
  const matched = tf.gather(tf.reshape(predMasks, [b * q, h * w]), tf.tensor1d(rows, 'int32')) as tf.Tensor2D;
  const m = rows.length;
  let logits: tf.Tensor2D;
  let target: tf.Tensor2D;
  if (config.pointSampling) {
    const detached = matched.dataSync() as Float32Array;
    const coords = uncertainPointCoords(rng, detached, m, h, w, config.pointSampling);
    logits = pointSampleTensor(matched, coords, m, h, w);
    target = tf.tensor2d(pointSampleMasks(masks, size, size, coords), [m, config.pointSampling.numPoints]);
  } else {
    const flat = new Float32Array(m * h * w);
    masks.forEach((mask, i) => flat.set(downsampleMaskArea(mask, size, size, h, w), i * h * w));
    logits = matched;
    target = tf.tensor2d(flat, [m, h * w]);
  }
  return [maskBceLoss(logits, target, numMasks), diceLoss(logits, target, numMasks)];
}
