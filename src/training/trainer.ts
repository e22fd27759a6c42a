import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../engine/engine.js';
import { collateBatch, type TrainingBatch } from '../data/batch.js';
import type { TrainingDataset } from '../data/dataset.js';
import { augmentSample, type AugmentOptions } from '../data/mappers/augment.js';
import { DEFAULT_LOAD_OPTIONS, loadSample, type LoadOptions } from '../data/mappers/load-sample.js';
import { openDataset } from '../data/open-dataset.js';
import { defaultLossSwitches, type LossSwitches } from '../data/sampler/loss-switches.js';
import { MultiDatasetSampler, type SamplerDraw, type SamplerState } from '../data/sampler/multi-dataset-sampler.js';
import type { ApeModel } from '../inference/ape-model.js';
import { saveModel } from '../inference/model-files.js';
import type { ApeConfig } from '../modeling/config.js';
import type { WordTokenizer, WordTokenizerJson } from '../text/word-tokenizer.js';
import { Rng } from '../util/random.js';
import {
  loadCheckpoint,
  loadLatestCheckpoint,
  removeLeftoverTemporaries,
  saveCheckpoint,
  type TrainingCheckpoint,
} from './checkpoint.js';
import { assignCheckpointWeights } from './warm-start.js';
import type { TrainConfig } from './config.js';
import type { CriterionConfig } from './criterion.js';
import { batchGradients, type MicroBatchResult, type NegativeEmbeddings } from './batch-gradients.js';
export type { MicroBatchResult } from './batch-gradients.js';
import { buildNetwork, buildTokenizer, trainingModelConfig } from './model-factory.js';
import { NegativeBank } from './negative-bank.js';
import { AdamW } from './optim/adamw.js';
import { accumulateGradients, clipFactor, globalNorm } from './optim/gradients.js';
import { lrMultiplierFor, unmatchedMultiplierKeys } from './optim/lr-multipliers.js';
import { learningRateAt, plannedSchedule, type ScheduleConfig } from './optim/schedule.js';
import { GradientWorker } from './parallel/worker-pool.js';
import { concatArrays } from '../util/concat-arrays.js';
import { required } from '../util/checked.js';

/** What one optimizer step did. */
export interface StepReport {
  step: number;
  /** Unweighted loss terms and the weighted total, averaged over micro-batches. */
  losses: Record<string, number>;
  lr: number;
  gradNorm: number;
  /** The gradient was not finite and no update was made. */
  skipped: boolean;
  datasets: string[];
  /** Milliseconds spent loading data and in forward + backward + update. */
  dataMs: number;
  computeMs: number;
}

/** The JSON part of a checkpoint. */
interface RunState {
  sampler: SamplerState;
  tokenizer: WordTokenizerJson;
  modelConfig: ApeConfig;
  bankTexts: string[];
  bankDim: number;
  datasets: string[];
  /** The length the schedule was drawn for at the run's start (absent in older checkpoints). */
  plannedSteps?: number;
}

/**
 * A training run: datasets, sampler, network, optimizer, negative bank and their checkpoints.
 * Randomness is keyed by (seed, step) or carried in checkpointed state, so a resumed run takes
 * exactly the steps the uninterrupted one would have.
 */
export class Trainer {
  step = 0;
  private readonly params: Map<string, tf.Variable>;
  private readonly nameOf = new Map<string, string>();
  private readonly lrScale = new Map<string, number>();
  /** The learning-rate schedule, drawn once for the run's planned length. */
  readonly schedule: ScheduleConfig;
  readonly optimizer: AdamW;
  readonly sampler: MultiDatasetSampler;
  readonly bank: NegativeBank;
  private readonly switches: LossSwitches[];
  private readonly loadOptions: LoadOptions[];
  /** The gradient worker thread when `workers` is 2. */
  private worker: GradientWorker | null = null;
  /** Whether the worker's weights lag behind this thread's (true after every update). */
  private workerStale = false;

  private constructor(
    readonly config: TrainConfig,
    readonly datasets: TrainingDataset[],
    readonly network: ApeModel,
    readonly tokenizer: WordTokenizer,
    readonly modelConfig: ApeConfig,
    readonly plannedSteps: number,
  ) {
    this.schedule = plannedSchedule(config.optimizer.lr, config.schedule, plannedSteps);
    // A multiplier of 0 freezes a parameter: it is left out of the gradient and the optimizer.
    this.params = new Map(
      [...network.namedParameters()].filter(
        ([name, v]) => v.trainable && lrMultiplierFor(name, config.optimizer.lrMultipliers) > 0,
      ),
    );
    for (const [name, v] of this.params) {
      this.nameOf.set(v.name, name);
      this.lrScale.set(name, lrMultiplierFor(name, config.optimizer.lrMultipliers));
    }
    this.optimizer = new AdamW(this.params, {
      beta1: config.optimizer.betas[0],
      beta2: config.optimizer.betas[1],
      eps: config.optimizer.eps,
      weightDecay: config.optimizer.weightDecay,
    });
    this.sampler = new MultiDatasetSampler(
      datasets.map((d, i) => ({ name: d.name, size: d.size, weight: config.datasets[i]!.weight })),
      config.batchSize,
      config.seed,
    );
    this.bank = new NegativeBank(config.negativeBank.size);
    this.switches = config.datasets.map((spec, i) => {
      const d = datasets[i]!;
      const hasMasks =
        d.kind === 'semantic' ||
        d.records.images.some((im) => im.annotations.some((a) => a.segmentation !== undefined));
      return { ...defaultLossSwitches(d.kind, hasMasks, spec.federated === true), ...spec.losses };
    });
    this.loadOptions = config.datasets.map((spec) => ({
      ...DEFAULT_LOAD_OPTIONS,
      ...config.data,
      federated: spec.federated === true,
    }));
  }

  /**
   * Opens the datasets and either resumes from the newest checkpoint in `output/checkpoints` or
   * starts a new run.
   */
  static async create(config: TrainConfig, log: (line: string) => void = () => {}): Promise<Trainer> {
    // Loaded here rather than at import so that importing the library does not register them.
    await import('../engine/gradients-node.js');
    const datasets = config.datasets.map((spec) => openDataset(spec));
    for (const d of datasets) log(`dataset ${d.name}: ${d.kind}, ${d.size} images, ${d.prompts.length} categories`);
    const checkpoint = await Trainer.resumePoint(config, log);
    const state = checkpoint?.state as RunState | undefined;
    const start = !checkpoint && config.initFrom ? await loadCheckpoint(config.initFrom) : null;
    if (state && JSON.stringify(state.datasets) !== JSON.stringify(config.datasets.map((d) => d.name))) {
      throw new Error(
        `the checkpoints in ${config.output} were made with datasets ${state.datasets.join(', ')}; the config lists ${config.datasets.map((d) => d.name).join(', ')}`,
      );
    }
    const modelConfig =
      state?.modelConfig ??
      trainingModelConfig(config.model.preset, config.model.overrides, config.imageSize, config.model.textVocabSize);
    const tokenizer = buildTokenizer(
      modelConfig,
      datasets,
      state?.tokenizer ?? (start?.state as RunState | undefined)?.tokenizer,
    );
    const network = buildNetwork(modelConfig, tokenizer, config.seed);
    const trainer = new Trainer(
      config,
      datasets,
      network,
      tokenizer,
      modelConfig,
      Trainer.plannedSteps(config, state?.plannedSteps),
    );
    const unmatched = unmatchedMultiplierKeys(network.namedParameters().keys(), config.optimizer.lrMultipliers);
    if (unmatched.length)
      log(`optimizer.lrMultipliers: no parameter matches ${unmatched.map((k) => `'${k}'`).join(', ')}`);
    const frozen = [...network.namedParameters()]
      .filter(([name, v]) => v.trainable && !trainer.params.has(name))
      .map(([name]) => name);
    if (frozen.length) log(`frozen (lr multiplier 0): ${frozen.length} parameter tensors`);
    if (checkpoint) {
      trainer.restore(checkpoint);
      log(`resumed from step ${checkpoint.step}`);
    } else {
      log(`new run: ${network.parameterCount()} parameters (${trainer.params.size} trainable tensors)`);
      if (start) {
        const fresh = assignCheckpointWeights(network.namedParameters(), start, required(config.initFrom, 'initFrom'));
        log(
          `weights from ${config.initFrom} (step ${start.step})${fresh.length ? `; initialised afresh: ${fresh.join(', ')}` : ''}`,
        );
      }
    }
    if (config.workers === 2) {
      const params = [...network.namedParameters()].map(([name, v]): [string, Float32Array] => [
        name,
        v.dataSync() as Float32Array,
      ]);
      trainer.worker = await GradientWorker.start(modelConfig, tokenizer.toJSON(), params, trainer.criterionConfig(), [
        ...trainer.params.keys(),
      ]);
      log('data parallel: a gradient worker thread computes half of every batch');
    }
    return trainer;
  }

  /**
   * The checkpoint to resume from, or null for a new run; clears leftovers of interrupted writes.
   * Refuses (throws) rather than start over when checkpoints exist but none can be read, or when a
   * model folder exists without any checkpoint: a new run would silently replace that model.
   * Falling back past a damaged newest checkpoint keeps the model folder it wrote aside.
   */
  static async resumePoint(config: TrainConfig, log: (line: string) => void): Promise<TrainingCheckpoint | null> {
    const checkpointDir = Trainer.checkpointDir(config);
    const modelDir = Trainer.modelDir(config);
    for (const dir of [checkpointDir, modelDir]) {
      const removed = removeLeftoverTemporaries(dir);
      if (removed.length > 0)
        log(
          `removed ${removed.length} temporary file(s) left by an interrupted write in ${dir}: ${removed.join(', ')}`,
        );
    }
    const latest = await loadLatestCheckpoint(checkpointDir, log);
    const hasModel = existsSync(join(modelDir, 'model.safetensors'));
    if (!latest) {
      if (hasModel) {
        throw new Error(
          `${modelDir} holds a trained model but ${checkpointDir} has no checkpoint to resume; a new run would replace it. Move it away, or pass --restart to start over (it is kept aside, renamed)`,
        );
      }
      return null;
    }
    if (latest.skipped.length > 0 && hasModel) {
      const aside = `${modelDir}.from-${latest.skipped[0]!.file.replace(/\.safetensors$/, '')}`;
      renameSync(modelDir, aside);
      log(`the model folder was written with the checkpoint that cannot be used; kept as ${aside}`);
    }
    return latest.checkpoint;
  }

  /**
   * For `--restart`: moves the run's checkpoints and model folder aside (renamed with a time
   * stamp, nothing deleted) so the next Trainer.create starts a new run.
   */
  static setAside(config: TrainConfig, log: (line: string) => void): void {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    for (const dir of [Trainer.checkpointDir(config), Trainer.modelDir(config)]) {
      if (!existsSync(dir)) continue;
      const aside = `${dir}.before-restart-${stamp}`;
      renameSync(dir, aside);
      log(`restart: ${dir} moved to ${aside}`);
    }
  }

  /** The run's planned length: the checkpoint's plan, else the config's, else its `steps`. */
  static plannedSteps(config: TrainConfig, saved: number | undefined): number {
    const asked = config.schedule.plannedSteps;
    if (saved !== undefined && asked !== null && asked !== saved) {
      throw new Error(
        `schedule.plannedSteps is ${asked}, but the run in ${config.output} was planned for ${saved} steps; remove the setting (the run keeps its plan) or start a new run`,
      );
    }
    return saved ?? asked ?? config.steps;
  }

  static checkpointDir(config: TrainConfig): string {
    return join(config.output, 'checkpoints');
  }

  /** Where the latest weights are kept as a model folder (config.json, model.safetensors, tokenizer.json). */
  static modelDir(config: TrainConfig): string {
    return join(config.output, 'model');
  }

  /** Writes the current weights as a model folder that `ape predict/eval/serve --model` can load. */
  async exportModel(dir = Trainer.modelDir(this.config)): Promise<string> {
    await saveModel(this.network, dir);
    return dir;
  }

  criterionConfig(): CriterionConfig {
    return { ...this.config.loss };
  }

  /** Images [start, end) of one sampler draw with this run's loading and augmentation (loadDrawBatch). */
  loadBatch(draw: SamplerDraw, start = 0, end = draw.images.length): Promise<TrainingBatch> {
    return loadDrawBatch(
      this.datasets[draw.dataset]!,
      draw,
      this.loadOptions[draw.dataset]!,
      { size: this.config.imageSize, ...this.config.augment },
      this.switches[draw.dataset]!,
      start,
      end,
    );
  }

  /** Forward, losses and gradients of one batch; the gradients are keyed by parameter name. */
  computeGradients(batch: TrainingBatch, rng: Rng, negatives = this.negativesFor(batch)): MicroBatchResult {
    return batchGradients(this.network, this.params, batch, negatives, this.criterionConfig(), rng);
  }

  /** The negative bank's entries for a sentence batch (none for other batches or an empty bank). */
  negativesFor(batch: TrainingBatch): NegativeEmbeddings | null {
    if (batch.promptKind !== 'sentence' || !batch.switches.decoderClass) return null;
    const entries = this.bank.negatives(new Set(batch.prompts), this.config.negativeBank.perBatch);
    if (entries.length === 0) return null;
    return {
      data: concatArrays(
        Float32Array,
        entries.map((n) => n.embedding),
      ),
      count: entries.length,
      dim: entries[0]!.embedding.length,
    };
  }

  /** One optimizer step over `accumulate` micro-batches. */
  async trainStep(): Promise<StepReport> {
    const stepRng = new Rng(mixSeed(this.config.seed, this.step));
    const sum = new Map<string, Float32Array>();
    const losses: Record<string, number> = {};
    const datasets: string[] = [];
    let dataMs = 0;
    let computeMs = 0;
    const sentenceBatches: string[][] = [];
    for (let micro = 0; micro < this.config.accumulate; micro++) {
      const t0 = performance.now();
      const draw = this.sampler.next();
      let r: MicroBatchResult;
      let prompts: string[];
      let kind: TrainingBatch['promptKind'];
      let t1: number;
      if (this.worker) {
        // Data parallel: the worker thread takes the second half of the batch, this thread the first.
        const half = Math.ceil(draw.images.length / 2);
        const [a, b] = await Promise.all([this.loadBatch(draw, 0, half), this.loadBatch(draw, half)]);
        t1 = performance.now();
        prompts = [...new Set([...a.prompts, ...b.prompts])];
        kind = a.promptKind;
        const negatives = this.negativesFor({ ...a, prompts });
        const remote = this.computeGradientsInWorker(b, stepRng.seed(), negatives);
        const local = this.computeGradients(a, new Rng(stepRng.seed()), negatives);
        r = averageResults(local, await remote);
      } else {
        const batch = await this.loadBatch(draw);
        t1 = performance.now();
        prompts = batch.prompts;
        kind = batch.promptKind;
        r = this.computeGradients(batch, new Rng(stepRng.seed()));
      }
      accumulateGradients(sum, r.grads);
      for (const [k, v] of Object.entries(r.losses)) losses[k] = (losses[k] ?? 0) + v / this.config.accumulate;
      datasets.push(this.datasets[draw.dataset]!.name);
      if (kind === 'sentence') sentenceBatches.push(prompts);
      dataMs += t1 - t0;
      computeMs += performance.now() - t1;
    }
    const t2 = performance.now();
    if (this.config.accumulate > 1)
      for (const g of sum.values()) for (let i = 0; i < g.length; i++) g[i]! /= this.config.accumulate;
    const gradNorm = globalNorm(sum);
    const lr = learningRateAt(this.schedule, this.step);
    // A non-finite gradient (a rare bad batch) skips the update rather than poisoning the weights;
    // the step still counts, so a resumed run does not meet the same batch again.
    const skipped = !Number.isFinite(gradNorm);
    if (!skipped) {
      const factor = clipFactor(gradNorm, this.config.optimizer.clipNorm);
      this.optimizer.apply(sum, lr, this.lrScale, factor);
      this.workerStale = true;
      if (this.config.negativeBank.size > 0) for (const texts of sentenceBatches) this.remember(texts);
    }
    this.step++;
    computeMs += performance.now() - t2;
    return { step: this.step, losses, lr, gradNorm, skipped, datasets, dataMs, computeMs };
  }

  /** Adds a batch's sentences to the negative bank (embedded with the current weights). */
  private remember(texts: string[]): void {
    const emb = this.network.encodePrompts(texts, false);
    const data = emb.dataSync() as Float32Array;
    const dim = emb.shape[1];
    emb.dispose();
    this.bank.push(texts.map((text, i) => ({ text, embedding: data.slice(i * dim, (i + 1) * dim) })));
  }

  async saveCheckpoint(): Promise<string> {
    const params = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, v] of this.network.namedParameters())
      params.set(name, { shape: v.shape.slice(), data: v.dataSync() as Float32Array });
    const bank = this.bank.getState();
    const state: RunState = {
      sampler: this.sampler.getState(),
      tokenizer: this.tokenizer.toJSON(),
      modelConfig: this.modelConfig,
      bankTexts: bank.texts,
      bankDim: bank.dim,
      datasets: this.config.datasets.map((d) => d.name),
      plannedSteps: this.plannedSteps,
    };
    const checkpoint: TrainingCheckpoint = {
      step: this.step,
      params,
      optimizer: this.optimizer.getState(),
      optimizerParamSteps: this.optimizer.getParamSteps(),
      extras: new Map([['negative_bank', { shape: [bank.texts.length, bank.dim], data: bank.embeddings }]]),
      state: state as unknown as Record<string, unknown>,
    };
    return saveCheckpoint(
      Trainer.checkpointDir(this.config),
      checkpoint,
      this.config.checkpoint.keep,
      this.config.checkpoint.format,
    );
  }

  private restore(checkpoint: TrainingCheckpoint): void {
    for (const [name, v] of this.network.namedParameters()) {
      const saved = checkpoint.params.get(name);
      if (!saved) throw new Error(`checkpoint step ${checkpoint.step} has no parameter '${name}'`);
      if (saved.data.length !== v.size)
        throw new Error(`checkpoint parameter '${name}' has ${saved.data.length} values, the model ${v.size}`);
      v.assign(tf.tensor(saved.data, v.shape));
    }
    this.optimizer.setState(checkpoint.optimizer, checkpoint.optimizerParamSteps);
    const state = checkpoint.state as unknown as RunState;
    this.sampler.setState(state.sampler);
    const bank = checkpoint.extras.get('negative_bank');
    this.bank.setState({
      capacity: this.bank.capacity,
      texts: state.bankTexts,
      embeddings: bank?.data ?? new Float32Array(0),
      dim: state.bankDim,
    });
    this.step = checkpoint.step;
  }

  /** Tensors alive in the worker thread after its last request (0 without a worker). */
  get workerTensors(): number {
    return this.worker?.lastNumTensors ?? 0;
  }

  /** The gradients of `batch` computed by the worker thread (with the current weights). */
  computeGradientsInWorker(
    batch: TrainingBatch,
    seed: number,
    negatives = this.negativesFor(batch),
  ): Promise<MicroBatchResult> {
    if (!this.worker) throw new Error('computeGradientsInWorker: the run has no worker (workers: 1)');
    return this.worker.compute(batch, negatives, seed, this.paramsForWorker());
  }

  /** The trainable weights for the worker when they changed since its last request. */
  private paramsForWorker(): Array<[string, Float32Array]> | null {
    if (!this.workerStale) return null;
    this.workerStale = false;
    return [...this.params].map(([name, v]) => [name, v.dataSync() as Float32Array]);
  }

  /** Frees the weights and stops the worker thread (if any). */
  async close(): Promise<void> {
    await this.worker?.stop();
    this.worker = null;
    this.dispose();
  }

  dispose(): void {
    void this.worker?.stop();
    this.worker = null;
    this.optimizer.dispose();
    this.network.dispose();
  }
}

/**
 * Images [start, end) of a sampler draw, loaded, augmented and collated. Each image's random
 * choices depend on the draw and its position only, so a split batch sees the same samples.
 */
export async function loadDrawBatch(
  dataset: TrainingDataset,
  draw: SamplerDraw,
  load: LoadOptions,
  augment: AugmentOptions,
  switches: LossSwitches,
  start = 0,
  end = draw.images.length,
): Promise<TrainingBatch> {
  const rng = new Rng(draw.seed);
  const seeds = draw.images.map(() => [rng.seed(), rng.seed()] as const).slice(start, end);
  const samples = await Promise.all(
    draw.images.slice(start, end).map(async (index, k) => {
      const raw = await loadSample(dataset, index, new Rng(seeds[k]![0]), load);
      return augmentSample(raw, new Rng(seeds[k]![1]), augment);
    }),
  );
  return collateBatch(samples, augment.size, switches, dataset.name);
}

/** The mean of two halves' gradients and losses (a parameter missing from one half had zero gradient there). */
export function averageResults(a: MicroBatchResult, b: MicroBatchResult): MicroBatchResult {
  const grads = new Map<string, Float32Array>();
  for (const name of new Set([...a.grads.keys(), ...b.grads.keys()])) {
    const ga = a.grads.get(name);
    const gb = b.grads.get(name);
    const out = new Float32Array(required(ga ?? gb, `the gradient of '${name}'`).length);
    for (let i = 0; i < out.length; i++) out[i] = ((ga?.[i] ?? 0) + (gb?.[i] ?? 0)) / 2;
    grads.set(name, out);
  }
  const losses: Record<string, number> = {};
  for (const k of new Set([...Object.keys(a.losses), ...Object.keys(b.losses)]))
    losses[k] = ((a.losses[k] ?? 0) + (b.losses[k] ?? 0)) / 2;
  const phaseMs = {
    forward: Math.max(a.phaseMs.forward, b.phaseMs.forward),
    losses: Math.max(a.phaseMs.losses, b.phaseMs.losses),
    backward: Math.max(a.phaseMs.backward, b.phaseMs.backward),
  };
  return { grads, losses, phaseMs };
}

/** A per-step seed from the run seed and the step number (splitmix-style mixing). */
export function mixSeed(seed: number, step: number): number {
  let h = (seed ^ Math.imul(step + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
