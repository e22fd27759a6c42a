import { join } from 'node:path';
import { tf } from '../../engine/engine.js';
import type { TrainingBatch } from '../../data/batch.js';
import type { TrainingDataset } from '../../data/dataset.js';
import { DEFAULT_LOAD_OPTIONS, type LoadOptions } from '../../data/mappers/load-sample.js';
import { openDataset } from '../../data/open-dataset.js';
import { defaultLossSwitches } from '../../data/sampler/loss-switches.js';
import { MultiDatasetSampler, type SamplerState } from '../../data/sampler/multi-dataset-sampler.js';
import type { ApeModel } from '../../inference/ape-model.js';
import { maskOnlyLevels, type ApeConfig } from '../../modeling/config.js';
import { Module } from '../../nn/module.js';
import { Linear } from '../../nn/linear.js';
import type { WordTokenizer, WordTokenizerJson } from '../../text/word-tokenizer.js';
import { concatArrays } from '../../util/concat-arrays.js';
import { Rng } from '../../util/random.js';
import { saveCheckpoint, type TrainingCheckpoint } from '../checkpoint.js';
import { buildNetwork, buildTokenizer, trainingModelConfig } from '../model-factory.js';
import { AdamW } from '../optim/adamw.js';
import { clipFactor, globalNorm } from '../optim/gradients.js';
import { lrMultiplierFor } from '../optim/lr-multipliers.js';
import { learningRateAt, plannedSchedule, type ScheduleConfig } from '../optim/schedule.js';
import type { StepReport } from '../trainer.js';
import { Trainer, loadDrawBatch, mixSeed } from '../trainer.js';
import type { PretrainConfig } from './config.js';
import { cellClassTargets, objectPooling, phraseCandidates } from './dense-targets.js';
import { phraseNaming } from './phrase-loss.js';
import { getOrThrow, required } from '../../util/checked.js';
import { cosineNaming, l2normalize } from './cosine-naming.js';
import { StemCropStage } from './stem-crop-stage.js';

/** The pretraining heads: a projection per pyramid level from the pyramid width to the text tower's. */
class PretrainHeads extends Module {
  readonly proj = new Map<string, Linear>();

  constructor(levels: readonly string[], inDim: number, outDim: number, rng: Rng) {
    super();
    for (const level of levels) this.proj.set(level, this.child(`proj_${level}`, new Linear(inDim, outDim, rng)));
  }
}

interface PretrainState {
  sampler: SamplerState;
  tokenizer: WordTokenizerJson;
  modelConfig: ApeConfig;
  datasets: string[];
  plannedSteps: number;
  /** Steps of the stem-crop stage the run was started with (absent in older checkpoints: none). */
  cropSteps?: number;
}

/** Offset of the seed the stem dropout draws from (apart from the step's other draws). */
const STEM_DROPOUT_SEED = 7919;

/** Heads' parameter names in checkpoints (never in the exported weights). */
const HEADS = 'pretrain.';

/**
 * The proxy pretraining stage: the detector's backbone and text tower (same names, same
 * tokenizer) trained on the synthetic world by dense segmentation of every pyramid level in
 * `pretrain.levels` and by naming each object from its pooled features, both as cosine logits
 * against the text tower's embeddings of the category names (a small CLIP whose classifier is the
 * text tower). Checkpoints, schedule and resume work as in Trainer; `exportModel` writes the
 * backbone and text weights as a checkpoint that a detector run's `initFrom` loads by name.
 *
 * With `pretrain.stemCrops` the run's first `stemCrops.steps` steps are the stem-crop stage
 * (StemCropStage) and the full-image steps follow: the step counter runs over both, to
 * `stemCrops.steps + steps`, and full-image step t (from 0) is run step `stemCrops.steps + t`,
 * with the learning rate and random draws the run without the stage gives its step t.
 */
export class Pretrainer {
  step = 0;
  private readonly params = new Map<string, tf.Variable>();
  private readonly lrScale = new Map<string, number>();
  readonly heads: PretrainHeads;
  readonly optimizer: AdamW;
  readonly sampler: MultiDatasetSampler;
  readonly schedule: ScheduleConfig;
  /** The datasets pretraining draws from (detection and semantic sets). */
  private readonly sources: TrainingDataset[];
  private readonly loadOptions: LoadOptions;
  /** The stem-crop stage, when the config has one. */
  readonly cropStage: StemCropStage | null;

  private constructor(
    readonly config: PretrainConfig,
    datasets: TrainingDataset[],
    readonly network: ApeModel,
    readonly tokenizer: WordTokenizer,
    readonly modelConfig: ApeConfig,
    readonly plannedSteps: number,
  ) {
    const p = config.pretrain;
    const levels = [...new Set([...p.levels, p.objectLevel, ...(p.stemCrops?.levels ?? [])])];
    this.heads = new PretrainHeads(
      levels,
      modelConfig.backbone.pyramid.outChannels,
      modelConfig.text.encoder.embedDim,
      new Rng(config.seed + 1),
    );
    const candidates = [...network.namedParameters()].filter(([name]) =>
      p.export.some((prefix) => name.startsWith(prefix)),
    );
    for (const [name, v] of [
      ...candidates,
      ...[...this.heads.namedParameters()].map(([n, v]) => [HEADS + n, v] as const),
    ]) {
      const scale = lrMultiplierFor(name, config.optimizer.lrMultipliers);
      if (scale <= 0) continue;
      this.params.set(name, v);
      this.lrScale.set(name, scale);
    }
    this.optimizer = new AdamW(this.params, {
      beta1: config.optimizer.betas[0],
      beta2: config.optimizer.betas[1],
      eps: config.optimizer.eps,
      weightDecay: config.optimizer.weightDecay,
    });
    const picked = config.datasets.flatMap((spec, i) =>
      spec.type === 'detection' || spec.type === 'semantic' || (spec.type === 'grounding' && p.phraseWeight > 0)
        ? [i]
        : [],
    );
    this.sources = picked.map((i) => datasets[i]!);
    this.sampler = new MultiDatasetSampler(
      picked.map((i) => ({ name: datasets[i]!.name, size: datasets[i]!.size, weight: config.datasets[i]!.weight })),
      config.batchSize,
      config.seed,
    );
    this.loadOptions = { ...DEFAULT_LOAD_OPTIONS, ...config.data };
    this.schedule = plannedSchedule(config.optimizer.lr, config.schedule, plannedSteps);
    const known = this.featureLevels();
    for (const level of levels)
      if (!known.includes(level))
        throw new Error(`pretrain: level '${level}' is not a pyramid level of the model (${known.join(', ')})`);
    const crops = config.datasets.findIndex((d) => d.type === 'detection');
    this.cropStage = p.stemCrops
      ? new StemCropStage(
          p.stemCrops,
          config,
          required(datasets[crops], 'a detection set for pretrain.stemCrops'),
          network,
          this.heads.proj,
        )
      : null;
  }

  /** Steps of the stem-crop stage (0 without one). */
  get cropSteps(): number {
    return this.config.pretrain.stemCrops?.steps ?? 0;
  }

  /** The step the run ends at: the crop stage's steps and the full-image ones. */
  get finalStep(): number {
    return this.cropSteps + this.config.steps;
  }

  /** Opens the datasets, the newest checkpoint in output/checkpoints if any, else a new run. */
  static async create(config: PretrainConfig, log: (line: string) => void = () => {}): Promise<Pretrainer> {
    await import('../../engine/gradients-node.js');
    const datasets = config.datasets.map((spec) => openDataset(spec));
    for (const d of datasets) log(`dataset ${d.name}: ${d.kind}, ${d.size} images, ${d.prompts.length} categories`);
    const checkpoint = await Trainer.resumePoint(config, log);
    const state = checkpoint?.state as PretrainState | undefined;
    if (state && JSON.stringify(state.datasets) !== JSON.stringify(config.datasets.map((d) => d.name))) {
      throw new Error(
        `the checkpoints in ${config.output} were made with datasets ${state.datasets.join(', ')}; the config lists ${config.datasets.map((d) => d.name).join(', ')}`,
      );
    }
    const cropSteps = config.pretrain.stemCrops?.steps ?? 0;
    if (state && (state.cropSteps ?? 0) !== cropSteps) {
      // The step counter's meaning depends on the stage's length, so a run keeps the one it started with.
      throw new Error(
        `the run in ${config.output} was started with ${state.cropSteps ?? 0} stem-crop steps (pretrain.stemCrops.steps); the config says ${cropSteps}`,
      );
    }
    const modelConfig =
      state?.modelConfig ??
      trainingModelConfig(config.model.preset, config.model.overrides, config.imageSize, config.model.textVocabSize);
    const tokenizer = buildTokenizer(modelConfig, datasets, state?.tokenizer);
    const network = buildNetwork(modelConfig, tokenizer, config.seed);
    const run = new Pretrainer(
      config,
      datasets,
      network,
      tokenizer,
      modelConfig,
      Trainer.plannedSteps(config, state?.plannedSteps),
    );
    if (checkpoint) {
      run.restore(checkpoint);
      log(`resumed from step ${checkpoint.step}`);
    } else {
      log(
        `new pretraining run: ${run.params.size} trained tensors (${config.pretrain.export.join(', ')} and the heads)`,
      );
    }
    if (run.cropStage && run.step < run.cropSteps) {
      const { settings, walk, dataset } = run.cropStage;
      log(
        `stem-crop stage: steps ${run.step + 1}-${run.cropSteps} of ${run.finalStep}, ${settings.batchSize} crops of ${settings.cropSize} px per step from the ${walk.total} thing objects of ${dataset.name}`,
      );
    }
    return run;
  }

  /** Where exportModel writes the weights a detector run starts from (`initFrom`). */
  static weightsDir(config: PretrainConfig): string {
    return join(config.output, 'weights');
  }

  /** The backbone's output levels: the transformer's and the mask-only ones. */
  private featureLevels(): string[] {
    return [...this.network.levelNames, ...maskOnlyLevels(this.modelConfig).names];
  }

  async trainStep(): Promise<StepReport> {
    if (this.cropStage && this.step < this.cropSteps) return this.cropStep(this.cropStage);
    const t0 = performance.now();
    const local = this.step - this.cropSteps;
    const draw = this.sampler.next();
    const dataset = this.sources[draw.dataset]!;
    const switches = defaultLossSwitches(dataset.kind, true, false);
    const batch = await loadDrawBatch(
      dataset,
      draw,
      this.loadOptions,
      { size: this.config.imageSize, ...this.config.augment },
      switches,
    );
    const t1 = performance.now();
    const rng = new Rng(mixSeed(this.config.seed, local));
    const { losses, grads } = this.gradients(batch, rng, { stem: !this.dropsStem(local) });
    return this.update(grads, losses, learningRateAt(this.schedule, local), dataset.name, t1 - t0, t1);
  }

  /**
   * Whether full-image step `local` leaves the stem out (`pretrain.stemDropout`): a draw of its
   * own, so the other random draws of the step are those of a run without dropout.
   */
  dropsStem(local: number): boolean {
    const p = this.config.pretrain.stemDropout;
    return p > 0 && new Rng(mixSeed(this.config.seed + STEM_DROPOUT_SEED, local)).next() < p;
  }

  /** One step of the stem-crop stage. */
  private async cropStep(stage: StemCropStage): Promise<StepReport> {
    const t0 = performance.now();
    const batch = await stage.batch(this.step);
    const t1 = performance.now();
    const losses: Record<string, number> = {};
    const grads = this.differentiate(() => stage.loss(batch, losses), losses);
    return this.update(grads, losses, learningRateAt(stage.schedule, this.step), stage.dataset.name, t1 - t0, t1);
  }

  /** Applies a step's gradients (skipped when not finite; the step still counts) and reports it. */
  private update(
    grads: Map<string, Float32Array>,
    losses: Record<string, number>,
    lr: number,
    dataset: string,
    dataMs: number,
    computeStart: number,
  ): StepReport {
    const gradNorm = globalNorm(grads);
    const skipped = !Number.isFinite(gradNorm);
    if (!skipped) this.optimizer.apply(grads, lr, this.lrScale, clipFactor(gradNorm, this.config.optimizer.clipNorm));
    this.step++;
    return {
      step: this.step,
      losses,
      lr,
      gradNorm,
      skipped,
      datasets: [dataset],
      dataMs,
      computeMs: performance.now() - computeStart,
    };
  }

  /** Gradients of `loss` by parameter name, its value as `losses.total`. */
  private differentiate(loss: () => tf.Scalar, losses: Record<string, number>): Map<string, Float32Array> {
    const names = new Map([...this.params].map(([name, v]) => [v.name, name]));
    const { value, grads } = tf.variableGrads(loss, [...this.params.values()]);
    losses.total = value.dataSync()[0]!;
    value.dispose();
    const named = new Map<string, Float32Array>();
    for (const [id, g] of Object.entries(grads)) {
      named.set(getOrThrow(names, id, 'parameter names by variable'), g.dataSync() as Float32Array);
      g.dispose();
    }
    return named;
  }

  /** The pretraining losses of one batch and their gradients by parameter name (`stem: false`: without the stem). */
  gradients(
    batch: TrainingBatch,
    rng: Rng,
    options: { stem?: boolean } = {},
  ): { losses: Record<string, number>; grads: Map<string, Float32Array> } {
    const p = this.config.pretrain;
    const s = batch.size;
    const losses: Record<string, number> = {};
    if (this.network.backbone.stem) losses.stem = options.stem === false ? 0 : 1;
    const images = tf.tensor4d(batch.images, [batch.batchSize, s, s, 3]);
    const grads = this.differentiate(() => {
      const x = this.network.normalize({ images, sizes: batch.sizes });
      const features = this.network.backbone.forward(x, { training: true, rng, stem: options.stem });
      const text = tf.tidy(() => l2normalize(this.network.encodePrompts(batch.prompts, true)));
      const projected = (level: string) => {
        const f = features[level]!;
        const [b, h, w, c] = f.shape;
        return {
          z: getOrThrow(this.heads.proj, level, 'pretraining projections').forward(
            tf.reshape(f, [b * h * w, c]),
          ) as tf.Tensor2D,
          h,
          w,
        };
      };
      const terms: tf.Scalar[] = [];
      if (batch.promptKind === 'sentence') {
        terms.push(this.phraseTerm(batch, projected(p.objectLevel), text, losses));
        for (const f of Object.values(features)) f.dispose();
        return terms[0]!;
      }
      const segTerms = p.levels.map((level) => {
        const { z, h, w } = projected(level);
        const logp = tf.logSoftmax(tf.div(tf.matMul(l2normalize(z), text, false, true), p.temperature));
        const cells = batch.targets.map((t) => cellClassTargets(t, s, h, w, batch.prompts.length));
        const probs = tf.tensor2d(
          concatArrays(
            Float32Array,
            cells.map((c) => c.probs),
          ),
          [batch.batchSize * h * w, batch.prompts.length],
        );
        const weights = concatArrays(
          Float32Array,
          cells.map((c) => c.weights),
        );
        const covered = weights.reduce((a, v) => a + v, 0);
        const perCell = tf.neg(tf.sum(tf.mul(probs, logp), 1));
        return tf.div(tf.sum(tf.mul(perCell, tf.tensor1d(weights))), Math.max(covered, 1)) as tf.Scalar;
      });
      const seg = tf.div(tf.addN(segTerms), segTerms.length) as tf.Scalar;
      losses.segmentation = seg.dataSync()[0]!;
      terms.push(tf.mul(seg, p.segmentationWeight) as tf.Scalar);
      const { z, h, w } = projected(p.objectLevel);
      const pool = objectPooling(batch.targets, s, h, w);
      if (pool.count > 0) {
        const pooled = tf.matMul(tf.tensor2d(pool.weights, [pool.count, batch.batchSize * h * w]), z) as tf.Tensor2D;
        const objects = cosineNaming(pooled, text, pool.labels, p.temperature);
        losses.object = objects.loss.dataSync()[0]!;
        losses.object_accuracy = objects.accuracy;
        terms.push(tf.mul(objects.loss, p.objectWeight) as tf.Scalar);
      }
      for (const f of Object.values(features)) f.dispose();
      return tf.addN(terms) as tf.Scalar;
    }, losses);
    images.dispose();
    return { losses, grads };
  }

  /**
   * Grounding batches (`pretrain.phraseWeight` > 0): each referred object's pooled features named
   * among its image's phrases (attribute phrases such as "the small blue ring", and relations),
   * cross-entropy over cosine logits with the other phrases of the same object left out; weighted,
   * and logged as `phrase` and `phrase_accuracy`.
   */
  private phraseTerm(
    batch: TrainingBatch,
    level: { z: tf.Tensor2D; h: number; w: number },
    text: tf.Tensor2D,
    losses: Record<string, number>,
  ): tf.Scalar {
    const { z, h, w } = level;
    const p = batch.prompts.length;
    const pool = objectPooling(batch.targets, batch.size, h, w);
    // No referred object left after cropping: a zero that still reaches the trained tensors.
    if (pool.count === 0 || p === 0) return tf.mul(tf.add(tf.sum(z), tf.sum(text)), 0) as tf.Scalar;
    const candidates = phraseCandidates(batch.targets, pool, p);
    const pooled = tf.matMul(tf.tensor2d(pool.weights, [pool.count, batch.batchSize * h * w]), z) as tf.Tensor2D;
    const logits = tf.div(tf.matMul(l2normalize(pooled), text, false, true), this.config.pretrain.temperature);
    const { loss, accuracy } = phraseNaming(logits as tf.Tensor2D, pool.labels, candidates);
    losses.phrase = loss.dataSync()[0]!;
    losses.phrase_accuracy = accuracy;
    return tf.mul(loss, this.config.pretrain.phraseWeight) as tf.Scalar;
  }

  /** Every parameter of the network and the heads (heads under `pretrain.`), as the checkpoints name them. */
  allNamedParameters(): Map<string, tf.Variable> {
    const out = new Map(this.network.namedParameters());
    for (const [name, v] of this.heads.namedParameters()) out.set(HEADS + name, v);
    return out;
  }

  async saveCheckpoint(): Promise<string> {
    const params = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, v] of this.allNamedParameters())
      params.set(name, { shape: v.shape.slice(), data: v.dataSync() as Float32Array });
    const state: PretrainState = {
      sampler: this.sampler.getState(),
      tokenizer: this.tokenizer.toJSON(),
      modelConfig: this.modelConfig,
      datasets: this.config.datasets.map((d) => d.name),
      plannedSteps: this.plannedSteps,
      cropSteps: this.cropSteps,
    };
    return saveCheckpoint(
      Trainer.checkpointDir(this.config),
      {
        step: this.step,
        params,
        optimizer: this.optimizer.getState(),
        optimizerParamSteps: this.optimizer.getParamSteps(),
        extras: new Map(),
        state: state as unknown as Record<string, unknown>,
      },
      this.config.checkpoint.keep,
      this.config.checkpoint.format,
    );
  }

  /**
   * Writes the exported weights (`pretrain.export` prefixes) and the tokenizer as a training
   * checkpoint without optimizer state, the newest one only, for a detector run's `initFrom`.
   */
  async exportModel(): Promise<string> {
    const params = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, v] of this.network.namedParameters()) {
      if (this.config.pretrain.export.some((prefix) => name.startsWith(prefix)))
        params.set(name, { shape: v.shape.slice(), data: v.dataSync() as Float32Array });
    }
    return saveCheckpoint(
      Pretrainer.weightsDir(this.config),
      {
        step: this.step,
        params,
        optimizer: { step: this.step, moments: new Map() },
        optimizerParamSteps: {},
        extras: new Map(),
        state: { tokenizer: this.tokenizer.toJSON(), modelConfig: this.modelConfig, pretrained: true },
      },
      1,
    );
  }

  private restore(checkpoint: TrainingCheckpoint): void {
    for (const [name, v] of this.allNamedParameters()) {
      const saved = checkpoint.params.get(name);
      if (!saved) throw new Error(`checkpoint step ${checkpoint.step} has no parameter '${name}'`);
      if (saved.data.length !== v.size)
        throw new Error(`checkpoint parameter '${name}' has ${saved.data.length} values, the model ${v.size}`);
      tf.tidy(() => v.assign(tf.tensor(saved.data, v.shape)));
    }
    this.optimizer.setState(checkpoint.optimizer, checkpoint.optimizerParamSteps);
    this.sampler.setState((checkpoint.state as unknown as PretrainState).sampler);
    this.step = checkpoint.step;
  }

  dispose(): void {
    this.optimizer.dispose();
    this.heads.dispose();
    this.network.dispose();
  }
}
