import { tf } from '../../engine/engine.js';
import type { TrainingDataset } from '../../data/dataset.js';
import type { ApeNetwork } from '../../modeling/ape-network.js';
import type { ConvStem } from '../../modeling/backbone/conv-stem.js';
import type { Linear } from '../../nn/linear.js';
import { getOrThrow } from '../../util/checked.js';
import { Rng } from '../../util/random.js';
import { downsampleMaskArea } from '../losses/mask-targets.js';
import { plannedSchedule, type ScheduleConfig } from '../optim/schedule.js';
import { mixSeed } from '../trainer.js';
import type { PretrainConfig, StemCropSettings } from './config.js';
import { cosineNaming, l2normalize } from './cosine-naming.js';
import { augmentPicks, loadCrops, plainPicks, ThingCropWalk, thingObjects, type CropBatch } from './thing-crops.js';

/** Keeps the crop stage's random draws apart from the full-image steps' (both are keyed by step). */
const CROP_SEED = 0x5c0b;

/**
 * The stem-crop stage of pretraining (`pretrain.stemCrops`): thing objects cropped at the scale
 * the detector sees them, run through the conv stem alone, each stage of `levels` pooled over
 * the object's region, projected by the stem's own projection into the pyramid and by the
 * pretraining head of that level, and named against the text tower's category names (cosine
 * logits, `pretrain.temperature`), each level on its own. Training the stem's projections here
 * makes the pyramid levels carry what the stem learnt as soon as the full-image steps begin, and
 * the heads' projections are the ones the full-image object and dense terms read.
 */
export class StemCropStage {
  readonly walk: ThingCropWalk;
  /** The stage's learning rates: warmup, then the config's decay over the stage's steps. */
  readonly schedule: ScheduleConfig;
  private readonly stem: ConvStem;
  private readonly paths: Array<{ level: string; stage: number; proj: Linear; head: Linear }>;

  constructor(
    readonly settings: StemCropSettings,
    private readonly config: PretrainConfig,
    readonly dataset: TrainingDataset,
    private readonly network: ApeNetwork,
    heads: ReadonlyMap<string, Linear>,
  ) {
    const stem = network.backbone.stem;
    if (!stem)
      throw new Error('pretrain.stemCrops: the model has no conv stem (model.overrides.backbone.stem.channels)');
    this.stem = stem;
    if (settings.cropSize % stem.maxStride !== 0)
      throw new Error(
        `pretrain.stemCrops.cropSize must be a multiple of the stem's largest stride ${stem.maxStride}, got ${settings.cropSize}`,
      );
    this.paths = settings.levels.map((level) => {
      const out = stem.outputs.find((o) => o.level === level);
      if (!out)
        throw new Error(
          `pretrain.stemCrops.levels: no stem stage feeds level '${level}' (the stem feeds ${stem.outputs.map((o) => o.level).join(', ')})`,
        );
      return { ...out, head: getOrThrow(heads, level, 'pretraining projections') };
    });
    this.walk = new ThingCropWalk(dataset, config.seed ^ CROP_SEED);
    this.schedule = plannedSchedule(
      settings.lr ?? config.optimizer.lr,
      { ...config.schedule, warmupSteps: settings.warmupSteps },
      settings.steps,
    );
  }

  /** Step `step`'s crops: the walk's objects with flips, scale jitter and offsets keyed by the seed and the step. */
  batch(step: number): Promise<CropBatch> {
    const rng = new Rng(mixSeed(this.config.seed ^ CROP_SEED, step));
    const objects = this.walk.objectsAt(step, this.settings.batchSize);
    const picks = augmentPicks(this.dataset, objects, rng, {
      imageSize: this.config.imageSize,
      ...this.config.augment,
      shift: this.settings.shift,
    });
    return loadCrops(this.dataset, picks, this.settings.cropSize, this.network.config.input);
  }

  /**
   * The naming loss of a batch (mean over levels) with every level's loss and accuracy in
   * `losses` (`crop_pN`, `crop_accuracy_pN`) and their means (`crop`, `crop_accuracy`).
   */
  loss(batch: CropBatch, losses: Record<string, number>): tf.Scalar {
    const { count, size } = batch;
    return tf.tidy(() => {
      const text = l2normalize(this.network.encodePrompts(this.dataset.prompts, true));
      const stages = this.stem.stages(tf.tensor4d(batch.pixels, [count, size, size, 3]));
      let accuracy = 0;
      const terms = this.paths.map(({ level, stage, proj, head }) => {
        const f = stages[stage]!;
        const [, h, w] = f.shape;
        const pooled = tf.sum(tf.mul(f, tf.tensor4d(poolingWeights(batch, h, w), [count, h, w, 1])), [1, 2]);
        const z = head.forward(proj.forward(pooled)) as tf.Tensor2D;
        const named = cosineNaming(z, text, batch.labels, this.config.pretrain.temperature);
        losses[`crop_${level}`] = named.loss.dataSync()[0]!;
        losses[`crop_accuracy_${level}`] = named.accuracy;
        accuracy += named.accuracy / this.paths.length;
        return named.loss;
      });
      const loss = tf.div(tf.addN(terms), terms.length) as tf.Scalar;
      losses.crop = loss.dataSync()[0]!;
      losses.crop_accuracy = accuracy;
      return loss;
    });
  }

  /**
   * Held-out naming: the share of the thing objects of another detection set's first `images`
   * images that each level names right from unaugmented crops, in batches of the stage's size.
   */
  async accuracy(dataset: TrainingDataset, images: number): Promise<Record<string, number>> {
    const objects = thingObjects(dataset, images).flat();
    const names = new Map(this.dataset.prompts.map((name, i) => [name, i]));
    const right = this.paths.map(() => 0);
    for (let start = 0; start < objects.length; start += this.settings.batchSize) {
      const picks = plainPicks(dataset, objects.slice(start, start + this.settings.batchSize), this.config.imageSize);
      const loaded = await loadCrops(dataset, picks, this.settings.cropSize, this.network.config.input);
      // Named among the training set's names, which the other folder's labels are mapped onto.
      const labels = loaded.labels.map((l) =>
        getOrThrow(names, dataset.prompts[l]!, `the categories of '${this.dataset.name}'`),
      );
      const batch = { ...loaded, labels };
      const losses: Record<string, number> = {};
      tf.dispose(this.loss(batch, losses));
      this.paths.forEach(({ level }, i) => (right[i]! += (losses[`crop_accuracy_${level}`] ?? 0) * batch.count));
    }
    return Object.fromEntries(this.paths.map(({ level }, i) => [level, right[i]! / Math.max(objects.length, 1)]));
  }
}

/** Per crop and cell of an h x w stage, the object's share of its region (area-averaged, rows sum to 1). */
function poolingWeights(batch: CropBatch, h: number, w: number): Float32Array {
  const out = new Float32Array(batch.count * h * w);
  batch.regions.forEach((region, k) => {
    const share = downsampleMaskArea(region, batch.size, batch.size, h, w);
    const sum = share.reduce((a, v) => a + v, 0);
    if (sum > 0) for (let i = 0; i < h * w; i++) out[k * h * w + i] = share[i]! / sum;
  });
  return out;
}
