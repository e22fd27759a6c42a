import './enable-gradients.js';
import { join } from 'node:path';
import { tf } from '../engine/engine.js';
import { collateBatch, type TrainingBatch } from '../data/batch.js';
import type { TrainingDataset } from '../data/dataset.js';
import { augmentSample } from '../data/mappers/augment.js';
import { DEFAULT_LOAD_OPTIONS, loadSample, type LoadOptions } from '../data/mappers/load-sample.js';
import { openDataset } from '../data/open-dataset.js';
import { defaultLossSwitches, type LossSwitches } from '../data/sampler/loss-switches.js';
import { MultiDatasetSampler, type SamplerDraw, type SamplerState } from '../data/sampler/multi-dataset-sampler.js';
import type { ApeRawOutput, PromptInput } from '../modeling/ape-network.js';
import type { ApeModel } from '../inference/ape-model.js';
import { saveModel } from '../inference/model-files.js';
import type { ApeConfig } from '../modeling/config.js';
import type { WordTokenizer, WordTokenizerJson } from '../text/word-tokenizer.js';
import { Rng } from '../util/random.js';
import { loadLatestCheckpoint, saveCheckpoint, type TrainingCheckpoint } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import { computeLosses, type CriterionConfig, type TrainingPredictions } from './criterion.js';
import { buildNetwork, buildTokenizer, trainingModelConfig } from './model-factory.js';
import { NegativeBank } from './negative-bank.js';
import { AdamW } from './optim/adamw.js';
import { accumulateGradients, clipFactor } from './optim/gradients.js';
import { learningRateAt } from './optim/schedule.js';

/** What one optimizer step did. */
export interface StepReport {
  step: number;
  /** Unweighted loss terms and the weighted total, averaged over micro-batches. */
  losses: Record<string, number>;
  lr: number;
  gradNorm: number;
  datasets: string[];
  /** Milliseconds spent loading data and in forward + backward + update. */
  dataMs: number;
  computeMs: number;
}

/** The gradients of one micro-batch (summed into the step's) and its loss values. */
export interface MicroBatchResult {
  /** Gradients by parameter name, read back to the host. */
  grads: Map<string, Float32Array>;
  losses: Record<string, number>;
  /** Milliseconds in the network's forward, the criterion, and the backward pass. */
  phaseMs: { forward: number; losses: number; backward: number };
}

/** The JSON part of a checkpoint. */
interface RunState {
  sampler: SamplerState;
  tokenizer: WordTokenizerJson;
  modelConfig: ApeConfig;
  bankTexts: string[];
  bankDim: number;
  datasets: string[];
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
  readonly optimizer: AdamW;
  readonly sampler: MultiDatasetSampler;
  readonly bank: NegativeBank;
  private readonly switches: LossSwitches[];
  private readonly loadOptions: LoadOptions[];

  private constructor(
    readonly config: TrainConfig,
    readonly datasets: TrainingDataset[],
    readonly network: ApeModel,
    readonly tokenizer: WordTokenizer,
    readonly modelConfig: ApeConfig,
  ) {
    this.params = new Map([...network.namedParameters()].filter(([, v]) => v.trainable));
    for (const [name, v] of this.params) {
      this.nameOf.set(v.name, name);
      let scale = 1;
      for (const [prefix, f] of Object.entries(config.optimizer.lrMultipliers)) if (name.startsWith(prefix)) scale = f;
      this.lrScale.set(name, scale);
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
      const hasMasks = d.kind === 'semantic' || d.records.images.some((im) => im.annotations.some((a) => a.segmentation !== undefined));
      return { ...defaultLossSwitches(d.kind, hasMasks, spec.federated === true), ...spec.losses };
    });
    this.loadOptions = config.datasets.map((spec) => ({ ...DEFAULT_LOAD_OPTIONS, ...config.data, federated: spec.federated === true }));
  }

  /**
   * Opens the datasets and either resumes from the newest checkpoint in `output/checkpoints` or
   * starts a new run.
   */
  static async create(config: TrainConfig, log: (line: string) => void = () => {}): Promise<Trainer> {
    const datasets = config.datasets.map((spec) => openDataset(spec));
    for (const d of datasets) log(`dataset ${d.name}: ${d.kind}, ${d.size} images, ${d.prompts.length} categories`);
    const checkpoint = await loadLatestCheckpoint(Trainer.checkpointDir(config), log);
    const state = checkpoint?.state as RunState | undefined;
    if (state && JSON.stringify(state.datasets) !== JSON.stringify(config.datasets.map((d) => d.name))) {
      throw new Error(`the checkpoints in ${config.output} were made with datasets ${state.datasets.join(', ')}; the config lists ${config.datasets.map((d) => d.name).join(', ')}`);
    }
    const modelConfig = state?.modelConfig ?? trainingModelConfig(config.model.preset, config.model.overrides, config.imageSize, config.model.textVocabSize);
    const tokenizer = buildTokenizer(modelConfig, datasets, state?.tokenizer);
    const network = buildNetwork(modelConfig, tokenizer, config.seed);
    const trainer = new Trainer(config, datasets, network, tokenizer, modelConfig);
    if (checkpoint) {
      trainer.restore(checkpoint);
      log(`resumed from step ${checkpoint.step}`);
    } else {
      log(`new run: ${network.parameterCount()} parameters (${trainer.params.size} trainable tensors)`);
    }
    return trainer;
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
    const l = this.config.loss;
    return { assignment: l.assignment, matchCost: l.matchCost, weights: l.weights, focalAlpha: l.focalAlpha, focalGamma: l.focalGamma, maskLayers: l.maskLayers, pointSampling: l.pointSampling };
  }

  /** Loads and augments the images of one sampler draw into a batch. */
  async loadBatch(draw: SamplerDraw, images = draw.images): Promise<TrainingBatch> {
    const dataset = this.datasets[draw.dataset]!;
    const rng = new Rng(draw.seed);
    const seeds = images.map(() => [rng.seed(), rng.seed()] as const);
    const samples = await Promise.all(
      images.map(async (index, k) => {
        const raw = await loadSample(dataset, index, new Rng(seeds[k]![0]), this.loadOptions[draw.dataset]!);
        return augmentSample(raw, new Rng(seeds[k]![1]), { size: this.config.imageSize, ...this.config.augment });
      }),
    );
    return collateBatch(samples, this.config.imageSize, this.switches[draw.dataset]!, dataset.name);
  }

  /** Forward, losses and gradients of one batch; the gradients are keyed by parameter name. */
  computeGradients(batch: TrainingBatch, rng: Rng): MicroBatchResult {
    const s = batch.size;
    const images = tf.tensor4d(batch.images, [batch.batchSize, s, s, 3]);
    const negatives = batch.promptKind === 'sentence' && batch.switches.decoderClass ? this.bank.negatives(new Set(batch.prompts), this.config.negativeBank.perBatch) : [];
    const extra = negatives.length ? tf.tensor2d(concat(negatives.map((n) => n.embedding)), [negatives.length, negatives[0]!.embedding.length]) : null;
    const prompts: PromptInput =
      batch.promptKind === 'sentence' ? { sentences: batch.prompts, extraSentenceEmbeddings: extra } : { vocabulary: batch.prompts.length ? batch.prompts : ['object'] };
    const losses: Record<string, number> = {};
    const criterion = this.criterionConfig();
    const t0 = performance.now();
    let t1 = t0;
    let t2 = t0;
    const { value, grads } = tf.variableGrads(() => {
      const out = this.network.forward({ images, sizes: batch.sizes }, prompts, { training: true, rng, layers: 'all', masks: criterion.maskLayers });
      t1 = performance.now();
      const result = computeLosses(trainingPredictions(out), batch.targets, batch.switches, criterion, rng);
      for (const [name, t] of result.terms) losses[name] = t.dataSync()[0]!;
      t2 = performance.now();
      return result.total;
    }, [...this.params.values()]);
    losses.total = value.dataSync()[0]!;
    const phaseMs = { forward: t1 - t0, losses: t2 - t1, backward: performance.now() - t2 };
    value.dispose();
    images.dispose();
    extra?.dispose();
    const named = new Map<string, Float32Array>();
    for (const [id, g] of Object.entries(grads)) {
      named.set(this.nameOf.get(id)!, g.dataSync() as Float32Array);
      g.dispose();
    }
    return { grads: named, losses, phaseMs };
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
      const batch = await this.loadBatch(this.sampler.next());
      const t1 = performance.now();
      const r = this.computeGradients(batch, new Rng(stepRng.seed()));
      accumulateGradients(sum, r.grads);
      for (const [k, v] of Object.entries(r.losses)) losses[k] = (losses[k] ?? 0) + v / this.config.accumulate;
      datasets.push(batch.dataset);
      if (batch.promptKind === 'sentence') sentenceBatches.push(batch.prompts);
      dataMs += t1 - t0;
      computeMs += performance.now() - t1;
    }
    const t2 = performance.now();
    if (this.config.accumulate > 1) for (const g of sum.values()) for (let i = 0; i < g.length; i++) g[i]! /= this.config.accumulate;
    const { norm: gradNorm, factor } = clipFactor(sum, this.config.optimizer.clipNorm);
    const lr = learningRateAt({ baseLr: this.config.optimizer.lr, totalSteps: this.config.steps, ...this.config.schedule }, this.step);
    this.optimizer.apply(sum, lr, this.lrScale, factor);
    if (this.config.negativeBank.size > 0) for (const texts of sentenceBatches) this.remember(texts);
    this.step++;
    computeMs += performance.now() - t2;
    return { step: this.step, losses, lr, gradNorm, datasets, dataMs, computeMs };
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
    for (const [name, v] of this.network.namedParameters()) params.set(name, { shape: v.shape.slice(), data: v.dataSync() as Float32Array });
    const bank = this.bank.getState();
    const state: RunState = {
      sampler: this.sampler.getState(),
      tokenizer: this.tokenizer.toJSON(),
      modelConfig: this.modelConfig,
      bankTexts: bank.texts,
      bankDim: bank.dim,
      datasets: this.config.datasets.map((d) => d.name),
    };
    const checkpoint: TrainingCheckpoint = {
      step: this.step,
      params,
      optimizer: this.optimizer.getState(),
      optimizerParamSteps: this.optimizer.getParamSteps(),
      extras: new Map([['negative_bank', { shape: [bank.texts.length, bank.dim], data: bank.embeddings }]]),
      state: state as unknown as Record<string, unknown>,
    };
    return saveCheckpoint(Trainer.checkpointDir(this.config), checkpoint, this.config.checkpoint.keep);
  }

  private restore(checkpoint: TrainingCheckpoint): void {
    for (const [name, v] of this.network.namedParameters()) {
      const saved = checkpoint.params.get(name);
      if (!saved) throw new Error(`checkpoint step ${checkpoint.step} has no parameter '${name}'`);
      if (saved.data.length !== v.size) throw new Error(`checkpoint parameter '${name}' has ${saved.data.length} values, the model ${v.size}`);
      v.assign(tf.tensor(saved.data, v.shape));
    }
    this.optimizer.setState(checkpoint.optimizer, checkpoint.optimizerParamSteps);
    const state = checkpoint.state as unknown as RunState;
    this.sampler.setState(state.sampler);
    const bank = checkpoint.extras.get('negative_bank');
    this.bank.setState({ capacity: this.bank.capacity, texts: state.bankTexts, embeddings: bank?.data ?? new Float32Array(0), dim: state.bankDim });
    this.step = checkpoint.step;
  }

  dispose(): void {
    this.optimizer.dispose();
    this.network.dispose();
  }
}

/** The criterion's view of the network's raw output. */
export function trainingPredictions(out: ApeRawOutput): TrainingPredictions {
  const anchors = out.encoder.anchors;
  const anchorBoxes = anchors.boxes.slice();
  for (let i = 0; i < anchors.valid.length; i++) if (!anchors.valid[i]) anchorBoxes.fill(0, i * 4 + 2, i * 4 + 4);
  return {
    layers: out.layers.map((l) => ({ logits: l.logits, boxes: l.boxes, ...(l.masks ? { masks: l.masks } : {}) })),
    encoder: { logits: out.encoder.logits, boxes: out.encoder.boxes, anchors: anchorBoxes },
    references: out.references[0],
  };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A per-step seed from the run seed and the step number (splitmix-style mixing). */
export function mixSeed(seed: number, step: number): number {
  let h = (seed ^ Math.imul(step + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
