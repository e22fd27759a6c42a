import { tf } from '../engine/engine.js';
import type { RgbImage } from '../io/image-types.js';
import type { CompressedRle } from '../structures/rle.js';
import { compressRle } from '../structures/rle-string.js';
import { ApeNetwork, type ForwardTimings, type FusionMode } from '../modeling/ape-network.js';
import { vocabularyWarnings } from '../text/prompt-vocabulary.js';
import { parsePromptString, promptEntries, type PromptSet } from '../text/prompts.js';
import { prepareImages } from './preprocess.js';
import { boxToOriginal, boxesToPixels, pasteInstanceMaskRle, selectInstances, type InstancePick } from './instances.js';
import { semanticAccumulator, semanticLabels } from './semantic.js';
import { semanticConfidence, unlabelUnsure } from './semantic-confidence.js';
import type { GroundingResult, InstanceResult, Prediction, PredictTask, SemanticResult } from './results.js';
import type { InferenceRunner, NetworkOutputs } from '../onnx/inference-runner.js';

export interface PredictOptions {
  /** Category names (each its own prompt, kept out of the fusion). */
  vocabulary?: string[];
  /** Sentences / referring expressions (each its own prompt, fused with the image). */
  sentences?: string[];
  /** A plain prompt string, split by APE's comma rule; added to the lists above. */
  prompt?: string;
  /** Minimum instance score (default: the config's scoreThreshold). */
  threshold?: number;
  /** Instances per image (default: the config's topK). */
  topK?: number;
  /** Class-wise NMS IoU (default: the config's nmsThreshold). */
  nmsThreshold?: number;
  /** Softmax temperature of semantic accumulation (default: the config's semanticTemperature). */
  semanticTemperature?: number;
  /** Constant background channel of the semantic argmax (default: the config's semanticBackground). */
  semanticBackground?: number;
  /**
   * Pixels whose label's confidence (the mask-weighted mean score of the queries covering them,
   * see semantic-confidence.ts) is under this are left unlabelled. Default 0: APE's map, where
   * one prompt alone labels everything. The command line, API and page use DEFAULT_SEMANTIC_THRESHOLD.
   */
  semanticThreshold?: number;
  /**
   * Which results to compute; default: instances and semantic, plus grounding when there are
   * sentences.
   */
  tasks?: PredictTask[];
  /** Instance and grounding masks (default true). */
  masks?: boolean;
  /** 'sentence' (APE) or 'word' (every token through the fusion; the baseline). */
  fusion?: FusionMode;
  /** Filled with the TF.js forward's phase times (ms; benchmarks). */
  timings?: ForwardTimings;
}

/** The settings that act after the network: which instances are kept and how the semantic map is made. */
export type PostprocessSettings = Pick<
  PredictOptions,
  'threshold' | 'topK' | 'nmsThreshold' | 'semanticTemperature' | 'semanticBackground' | 'semanticThreshold'
>;

/** Time spent in each stage of the last predict call, in milliseconds. */
export interface PredictTimings {
  preprocess: number;
  network: number;
  postprocess: number;
}

/**
 * The APE model with its tokenizer and prompt cache: `forward` for training (raw per-layer
 * outputs), `predict` for images -> typed results in original pixels.
 */
export class ApeModel extends ApeNetwork {
  lastTimings: PredictTimings = { preprocess: 0, network: 0, postprocess: 0 };

  /** Where predict runs the network: null for the TF.js engine (this model), else e.g. ONNX Runtime. */
  private runner: InferenceRunner | null = null;

  /** Runs predict's network forward on `runner` (null: back to TF.js); returns the previous one. */
  setInferenceRunner(runner: InferenceRunner | null): InferenceRunner | null {
    const previous = this.runner;
    this.runner = runner;
    return previous;
  }

  get inferenceEngine(): 'tfjs' | string {
    return this.runner?.name ?? 'tfjs';
  }

  /** Frees the weights, and the inference runner's resources (its release is not awaited). */
  override dispose(): void {
    const runner = this.setInferenceRunner(null);
    runner?.release().catch(() => undefined);
    super.dispose();
  }

  predict(image: RgbImage, options?: PredictOptions): Promise<Prediction>;
  predict(images: RgbImage[], options?: PredictOptions): Promise<Prediction[]>;
  async predict(input: RgbImage | RgbImage[], options: PredictOptions = {}): Promise<Prediction | Prediction[]> {
    const list = Array.isArray(input) ? input : [input];
    let results: Prediction[];
    if (this.runner) {
      if ((options.fusion ?? 'sentence') !== 'sentence')
        throw new Error(`predict: the ${this.runner.name} engine runs sentence fusion only`);
      const call = this.preparePredict(list, options, [{}]);
      const t0 = performance.now();
      let outputs: NetworkOutputs;
      try {
        outputs = await this.runner.run(call.batch, call.prompts);
      } finally {
        call.batch.images.dispose();
      }
      try {
        results = this.decodePredictions(call, outputs, t0)[0]!;
      } finally {
        tf.dispose([outputs.logits, outputs.boxes, outputs.masks]);
      }
    } else {
      results = this.predictSync(list, options);
    }
    return Array.isArray(input) ? results : results[0]!;
  }

  /** The synchronous core of predict on the TF.js engine (the wasm and cpu backends compute synchronously). */
  predictSync(images: RgbImage[], options: PredictOptions = {}): Prediction[] {
    return this.predictVariants(images, options, [{}])[0]!;
  }

  /**
   * One network pass, decoded once per variant of the post-processing settings (each variant
   * overrides `options`): result [v][i] is image i under variants[v]. Tuning the settings on a
   * validation split then costs one forward per image, not one per setting. Runs on TF.js.
   */
  predictVariants(images: RgbImage[], options: PredictOptions, variants: PostprocessSettings[]): Prediction[][] {
    const call = this.preparePredict(images, options, variants);
    const t0 = performance.now();
    const out = this.forward(call.batch, call.prompts, {
      fusion: options.fusion,
      layers: 'last',
      masks: 'last',
      timings: options.timings,
    });
    call.batch.images.dispose();
    const last = out.layers[out.layers.length - 1]!;
    try {
      return this.decodePredictions(
        call,
        { logits: last.logits, boxes: last.boxes, masks: last.masks!, maskStride: out.maskStride },
        t0,
      );
    } finally {
      out.dispose();
    }
  }

  /** Prompts, tasks, settings and the network input of one predict call. */
  private preparePredict(images: RgbImage[], options: PredictOptions, variants: PostprocessSettings[]) {
    const prompts = resolvePrompts(options);
    const entries = promptEntries(prompts);
    const warnings = vocabularyWarnings(
      this.tokenizer,
      entries.map((e) => e.text),
    );
    if (entries.length === 0) throw new Error('predict: no prompts (give vocabulary, sentences or a prompt string)');
    const tasks = new Set<PredictTask>(
      options.tasks ?? ['instances', 'semantic', ...(prompts.sentences.length > 0 ? (['grounding'] as const) : [])],
    );
    for (const t of tasks)
      if (!['instances', 'semantic', 'grounding'].includes(t))
        throw new Error(`predict: unknown task '${t}' (instances, semantic, grounding)`);
    if (variants.length === 0) throw new Error('predictVariants: no variants (give at least one, {} for the defaults)');
    const settings = variants.map((variant) => this.resolveSettings({ ...options, ...variant }));
    const t0 = performance.now();
    const { batch, placements } = prepareImages(images, this.config.input.size);
    return {
      prompts,
      entries,
      warnings,
      tasks,
      settings,
      batch,
      placements,
      withMasks: options.masks ?? true,
      preprocessMs: performance.now() - t0,
    };
  }

  /**
   * Post-processing shared by every engine: the last layer's outputs -> results per variant and
   * image. `networkStart` is when the network began (its time ends once scores and boxes are read).
   */
  private decodePredictions(
    call: ReturnType<ApeModel['preparePredict']>,
    outputs: NetworkOutputs,
    networkStart: number,
  ): Prediction[][] {
    const { entries, warnings, tasks, settings, placements, withMasks } = call;
    const { masks } = outputs;
    const [, q, p] = outputs.logits.shape;
    const scores = readValues(() => tf.sigmoid(outputs.logits));
    const boxes = outputs.boxes.dataSync() as Float32Array;
    const tNet = performance.now() - networkStart;
    const t0 = performance.now();
    const [, , maskH, maskW] = masks.shape;
    const stride = outputs.maskStride;

    // What does not depend on the settings is read once per image and shared by every variant.
    const perImage = placements.map((placement, i) => {
      const imageScores = scores.subarray(i * q * p, (i + 1) * q * p);
      const pixelBoxes = boxesToPixels(
        boxes.subarray(i * q * 4, (i + 1) * q * 4),
        placement.resizedWidth,
        placement.resizedHeight,
      );
      const inputBox = (query: number): [number, number, number, number] => [
        pixelBoxes[query * 4]!,
        pixelBoxes[query * 4 + 1]!,
        pixelBoxes[query * 4 + 2]!,
        pixelBoxes[query * 4 + 3]!,
      ];
      const toResultBox = (query: number) => boxToOriginal(inputBox(query), placement);
      // One RLE per query, the same object in every variant that keeps the query.
      const maskRles = new Map<number, CompressedRle>();
      const maskFor = (query: number): CompressedRle | null => {
        if (!withMasks) return null;
        let rle = maskRles.get(query);
        if (rle === undefined) {
          const m = readValues(() => tf.slice(masks, [i, query, 0, 0], [1, 1, maskH, maskW]));
          rle = compressRle(
            pasteInstanceMaskRle({ logits: m, height: maskH, width: maskW, stride }, inputBox(query), placement),
          );
          maskRles.set(query, rle);
        }
        return rle;
      };
      return { imageScores, pixelBoxes, toResultBox, maskFor };
    });

    const results = settings.map((s) =>
      placements.map((placement, i): Prediction => {
        const { imageScores, pixelBoxes, toResultBox, maskFor } = perImage[i]!;
        let instances: InstanceResult[] = [];
        if (tasks.has('instances')) {
          const picks: InstancePick[] = selectInstances(imageScores, q, p, pixelBoxes, {
            threshold: s.threshold,
            nmsThreshold: s.nmsThreshold,
            topK: s.topK,
          });
          instances = picks.map((pick) => {
            const e = entries[pick.prompt]!;
            return {
              prompt: e.text,
              promptIndex: e.index,
              kind: e.kind,
              score: pick.score,
              box: toResultBox(pick.query),
              mask: maskFor(pick.query),
              query: pick.query,
            };
          });
        }

        const grounding: GroundingResult[] = [];
        if (tasks.has('grounding')) {
          for (const e of entries) {
            if (e.kind !== 'sentence') continue;
            let best = 0;
            for (let k = 1; k < q; k++) if (imageScores[k * p + e.index]! > imageScores[best * p + e.index]!) best = k;
            grounding.push({
              sentence: e.text,
              promptIndex: e.index,
              score: imageScores[best * p + e.index]!,
              box: toResultBox(best),
              mask: maskFor(best),
              query: best,
            });
          }
        }

        let semantic: SemanticResult | null = null;
        if (tasks.has('semantic')) {
          const logits2d = tf.tidy(
            () => tf.reshape(tf.slice(outputs.logits, [i, 0, 0], [1, q, p]), [q, p]) as tf.Tensor2D,
          );
          const masks2d = tf.tidy(
            () => tf.reshape(tf.slice(masks, [i, 0, 0, 0], [1, q, maskH, maskW]), [q, maskH * maskW]) as tf.Tensor2D,
          );
          const accumulator = semanticAccumulator(logits2d, masks2d, s.semanticTemperature);
          const geometry = {
            maskH,
            maskW,
            stride,
            resizedW: placement.resizedWidth,
            resizedH: placement.resizedHeight,
            width: placement.width,
            height: placement.height,
          };
          const labels = semanticLabels(accumulator.source, p, geometry, s.semanticBackground);
          accumulator.dispose();
          if (s.semanticThreshold > 0) {
            const confidence = semanticConfidence(logits2d, masks2d);
            unlabelUnsure(labels, confidence.source, p, geometry, s.semanticThreshold);
            confidence.dispose();
          }
          tf.dispose([logits2d, masks2d]);
          semantic = { width: placement.width, height: placement.height, labels, prompts: entries.map((e) => e.text) };
        }
        return {
          width: placement.width,
          height: placement.height,
          prompts: entries,
          instances,
          semantic,
          grounding,
          warnings: [...warnings],
        };
      }),
    );
    this.lastTimings = { preprocess: call.preprocessMs, network: tNet, postprocess: performance.now() - t0 };
    return results;
  }

  /** The post-processing settings of one call: the options' values, else the config's. */
  private resolveSettings(options: PostprocessSettings): Required<PostprocessSettings> {
    const inf = this.config.inference;
    const resolved = {
      threshold: options.threshold ?? inf.scoreThreshold,
      topK: options.topK ?? inf.topK,
      nmsThreshold: options.nmsThreshold ?? inf.nmsThreshold,
      semanticTemperature: options.semanticTemperature ?? inf.semanticTemperature,
      semanticBackground: options.semanticBackground ?? inf.semanticBackground,
      semanticThreshold: options.semanticThreshold ?? 0,
    };
    if (!(resolved.semanticTemperature > 0))
      throw new Error(`predict: semanticTemperature must be > 0, got ${resolved.semanticTemperature}`);
    return resolved;
  }
}

/** Host copy of a tensor computed for reading only (the tensor is disposed). */
function readValues(fn: () => tf.Tensor): Float32Array {
  const t = tf.tidy(fn);
  const values = t.dataSync() as Float32Array;
  t.dispose();
  return values;
}

function resolvePrompts(options: PredictOptions): PromptSet {
  const vocabulary = [...(options.vocabulary ?? [])];
  const sentences = [...(options.sentences ?? [])];
  if (options.prompt !== undefined) {
    if (typeof options.prompt !== 'string') throw new Error('predict: prompt must be a string');
    const parsed = parsePromptString(options.prompt);
    vocabulary.push(...parsed.vocabulary);
    sentences.push(...parsed.sentences);
  }
  return { vocabulary, sentences };
}
