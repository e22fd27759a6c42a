import { tf } from '../engine/engine.js';
import type { RgbImage } from '../io/image-types.js';
import type { CompressedRle } from '../structures/rle.js';
import { compressRle } from '../structures/rle-string.js';
import { ApeNetwork, type ForwardTimings, type FusionMode } from '../modeling/ape-network.js';
import { vocabularyWarnings } from '../text/prompt-vocabulary.js';
import { parsePromptString, type PromptEntry, promptEntries, type PromptSet } from '../text/prompts.js';
import { RecentLists } from '../util/recent-lists.js';
import type { EncodeProgress } from '../text/prompt-embeddings.js';
import { prepareImages } from './preprocess.js';
import { boxToOriginal, boxesToPixels, pasteInstanceMaskRle } from './instances.js';
import { InstanceStream } from './instance-stream.js';
import { SemanticStream } from './semantic-stream.js';
import { cellMaskProbabilities } from './semantic.js';
import type { GroundingResult, InstanceResult, Prediction, PredictTask, SemanticResult } from './results.js';
import type { InferenceRunner, NetworkOutputs } from '../onnx/inference-runner.js';
import { getOrThrow, required } from '../util/checked.js';
import { forEachQueryMask, imageMaskLogits } from './instance-masks.js';
import {
  type PromptChunkScorer,
  type PromptChunkValues,
  runScorerAsync,
  runScorerSync,
  type ScorerSteps,
  SEMANTIC_BLOCK,
  scoreOn,
  type SyncPromptChunkScorer,
} from '../modeling/prompt-chunk-scores.js';
import { type QueryRangeThread, tfjsPromptScorer } from '../modeling/tfjs-prompt-scorer.js';
import { VocabularyUnitRows } from './vocabulary-rows.js';
import type { VisionLanguageAlign } from '../modeling/heads/vision-language-align.js';

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
  /**
   * Vocabulary prompts scored per chunk (default DEFAULT_PROMPT_CHUNK; rounded up to a multiple
   * of SEMANTIC_BLOCK): the instance selection and the semantic accumulation run over the chunks,
   * so memory does not grow with the vocabulary. The results do not depend on it.
   */
  promptChunk?: number;
  /** Filled with the TF.js forward's phase times (ms; benchmarks). */
  timings?: ForwardTimings;
}

/** A prompt list's parts that every prediction of it shares (ApeModel.promptList). */
interface PromptList {
  entries: readonly PromptEntry[];
  texts: readonly string[];
  warnings: string[];
}

/** Prompt lists whose entries predict keeps (a server alternating between a few vocabularies makes each once). */
const RECENT_PROMPT_LISTS = 4;
/** Prompts in all whose entries predict keeps: a longer list's are made per call, as its vectors are streamed. */
const RECENT_PROMPTS = 200_000;

/** Vocabulary prompts scored at a time by predict. */
export const DEFAULT_PROMPT_CHUNK = 4096;

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
  /** The part of postprocess that scores the prompts chunk by chunk and streams them through selection and accumulation. */
  alignment: number;
}

/**
 * The APE model with its tokenizer and prompt cache: `forward` for training (raw per-layer
 * outputs), `predict` for images -> typed results in original pixels.
 */
export class ApeModel extends ApeNetwork {
  lastTimings: PredictTimings = { preprocess: 0, network: 0, postprocess: 0, alignment: 0 };

  /** Prompt lists lately predicted (promptList). */
  private readonly promptLists = new RecentLists<PromptList>(RECENT_PROMPT_LISTS, RECENT_PROMPTS);

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

  /** A second thread for the TF.js scoring of vocabulary chunks (Node: loadModel sets one), or null. */
  private scoringThread: QueryRangeThread | null = null;

  /** Scores half of each large vocabulary chunk's queries on `thread` on TF.js (null: this thread alone); the model ends it. */
  setScoringThread(thread: QueryRangeThread | null): void {
    if (this.scoringThread !== thread) this.scoringThread?.dispose();
    this.scoringThread = thread;
  }

  /** Frees the weights, the inference runner's resources (its release is not awaited) and the scoring thread. */
  override dispose(): void {
    const runner = this.setInferenceRunner(null);
    runner?.release().catch(() => undefined);
    this.setScoringThread(null);
    super.dispose();
  }

  /**
   * One vector per prompt text ([N, D], the caller's to dispose), as encodePrompts, with the new
   * ones encoded on the engine predict runs on (the text tower's ONNX export on 'ort').
   */
  async encodePromptsOnEngine(texts: readonly string[]): Promise<tf.Tensor2D> {
    await this.cachePromptsOnEngine(texts);
    return this.encodePrompts(texts);
  }

  /**
   * Puts every text's vector in the prompt cache (and its store), encoding those neither holds on
   * the engine predict runs on; `onProgress(done, total)` follows the new ones batch by batch
   * (a first encoding of a large vocabulary takes minutes with the released text tower).
   */
  async cachePromptsOnEngine(texts: readonly string[], onProgress?: EncodeProgress): Promise<void> {
    if (this.runner) return this.runner.encodePrompts(texts, onProgress);
    this.refreshPromptCache();
    this.promptCache.cacheSentences(texts, onProgress);
  }

  predict(image: RgbImage, options?: PredictOptions): Promise<Prediction>;
  predict(images: RgbImage[], options?: PredictOptions): Promise<Prediction[]>;
  async predict(input: RgbImage | RgbImage[], options: PredictOptions = {}): Promise<Prediction | Prediction[]> {
    const list = Array.isArray(input) ? input : [input];
    const results = (await this.predictVariantsOnEngine(list, options, [{}]))[0]!;
    return Array.isArray(input) ? results : results[0]!;
  }

  /**
   * predictVariants on the engine predict runs on: the inference runner when one is set (ONNX
   * Runtime), else TF.js. One network pass, decoded once per variant.
   */
  async predictVariantsOnEngine(
    images: RgbImage[],
    options: PredictOptions,
    variants: PostprocessSettings[],
  ): Promise<Prediction[][]> {
    if (!this.runner) return this.predictVariants(images, options, variants);
    if ((options.fusion ?? 'sentence') !== 'sentence')
      throw new Error(`predict: the ${this.runner.name} engine runs sentence fusion only`);
    const call = this.preparePredict(images, options, variants);
    const t0 = performance.now();
    let outputs: NetworkOutputs;
    let scorer: PromptChunkScorer;
    let rows: VocabularyUnitRows;
    try {
      const { vocabulary, sentences } = call.prompts;
      scorer =
        vocabulary.length > 0 && this.runner.promptScorer
          ? await this.runner.promptScorer(this.config.transformer.proposals.numQueries)
          : this.promptScorer();
      rows = this.vocabularyRows(vocabulary, scorer);
      // The vocabulary goes to the runner to be encoded only: the network never takes it, and a
      // list whose unit rows this engine kept needs no vectors.
      outputs = await this.runner.run(call.batch, { vocabulary: rows.ready ? [] : vocabulary, sentences });
    } finally {
      call.batch.images.dispose();
    }
    try {
      return await runScorerAsync(this.decodePredictions(call, outputs, t0, scorer, rows), scorer);
    } finally {
      tf.dispose([outputs.sentenceLogits, outputs.hidden, outputs.boxes, outputs.masks]);
    }
  }

  /** Scores vocabulary chunks on TF.js (with the scoring thread, when there is one). */
  private promptScorer(): SyncPromptChunkScorer {
    return tfjsPromptScorer(this.classEmbed[this.classEmbed.length - 1]!, this.scoringThread);
  }

  /** The vocabulary's unit rows for `scorer` (kept ones, after the prompt cache is checked against the text tower's weights). */
  private vocabularyRows(vocabulary: readonly string[], scorer: PromptChunkScorer): VocabularyUnitRows {
    if (vocabulary.length > 0) this.refreshPromptCache();
    const head = this.classEmbed[this.classEmbed.length - 1]!;
    return new VocabularyUnitRows(this.promptCache, vocabulary, scorer, head.embedDimLanguage);
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
    const word = options.fusion === 'word';
    const out = this.forward(call.batch, call.prompts, {
      fusion: options.fusion,
      layers: 'last',
      masks: 'last',
      vocabularyLogits: word,
      hidden: true,
      timings: options.timings,
    });
    call.batch.images.dispose();
    const last = out.layers[out.layers.length - 1]!;
    try {
      const scorer = this.promptScorer();
      return runScorerSync(
        this.decodePredictions(
          call,
          {
            sentenceLogits: last.logits,
            hidden: required(last.hidden, 'the decoder hidden queries'),
            boxes: last.boxes,
            masks: required(last.masks, 'the mask logits'),
            maskStride: out.maskStride,
          },
          t0,
          scorer,
          // Word fusion: the sentence logits already hold every prompt.
          word ? null : this.vocabularyRows(call.prompts.vocabulary, scorer),
        ),
        scorer,
      );
    } finally {
      out.dispose();
    }
  }

  /**
   * The entries (validated), texts and vocabulary warnings of a prompt list, made once per list:
   * a vocabulary predicted image after image costs one comparison of the list, not 100,000 new
   * entries per prediction. Frozen: every prediction of the list shares them.
   */
  private promptList(prompts: PromptSet): PromptList {
    const texts = [...prompts.vocabulary, ...prompts.sentences];
    const tag = String(prompts.vocabulary.length);
    let list = this.promptLists.get(tag, texts);
    if (!list) {
      const entries = promptEntries(prompts);
      const frozen = Object.freeze(texts);
      list = {
        entries: Object.freeze(entries.map((e) => Object.freeze(e))),
        texts: frozen,
        warnings: vocabularyWarnings(this.tokenizer, frozen),
      };
      this.promptLists.set(tag, frozen, list, frozen.length);
    }
    return list;
  }

  /** Prompts, tasks, settings and the network input of one predict call. */
  private preparePredict(images: RgbImage[], options: PredictOptions, variants: PostprocessSettings[]) {
    const prompts = resolvePrompts(options);
    const { entries, texts, warnings } = this.promptList(prompts);
    if (entries.length === 0) throw new Error('predict: no prompts (give vocabulary, sentences or a prompt string)');
    const tasks = new Set<PredictTask>(
      options.tasks ?? ['instances', 'semantic', ...(prompts.sentences.length > 0 ? (['grounding'] as const) : [])],
    );
    for (const t of tasks)
      if (!['instances', 'semantic', 'grounding'].includes(t))
        throw new Error(`predict: unknown task '${t}' (instances, semantic, grounding)`);
    if (variants.length === 0) throw new Error('predictVariants: no variants (give at least one, {} for the defaults)');
    const settings = variants.map((variant) => this.resolveSettings({ ...options, ...variant }));
    const chunk = options.promptChunk ?? DEFAULT_PROMPT_CHUNK;
    if (!(Number.isInteger(chunk) && chunk > 0))
      throw new Error(`predict: promptChunk must be a positive integer, got ${options.promptChunk}`);
    const t0 = performance.now();
    const { batch, placements } = prepareImages(images, this.config.input.size);
    return {
      promptChunk: Math.ceil(chunk / SEMANTIC_BLOCK) * SEMANTIC_BLOCK,
      prompts,
      entries,
      texts,
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
   * image. `networkStart` is when the network began. The vocabulary is scored against the hidden
   * queries a chunk at a time by `scorer`, its unit rows from `rows` (null: the sentence logits
   * already hold every prompt, as in word fusion): each chunk to normalise or score is yielded,
   * the answer comes back (the driver runs the engine's scorer, synchronously on TF.js), and every
   * chunk goes through the instance selection and the semantic accumulation of each variant
   * before the next is made.
   */
  private *decodePredictions(
    call: ReturnType<ApeModel['preparePredict']>,
    outputs: NetworkOutputs,
    networkStart: number,
    scorer: PromptChunkScorer,
    rows: VocabularyUnitRows | null,
  ): ScorerSteps<Prediction[][]> {
    const { entries, texts, warnings, tasks, settings, placements, withMasks } = call;
    const { masks } = outputs;
    const [, q] = outputs.boxes.shape;
    const p = entries.length;
    const boxes = outputs.boxes.dataSync() as Float32Array;
    const tNet = performance.now() - networkStart;
    const t0 = performance.now();
    let alignment = 0;
    const [, , maskH, maskW] = masks.shape;
    const stride = outputs.maskStride;
    // Word fusion (no rows): the sentence logits hold every prompt, the vocabulary's first.
    const vocabulary = rows ? call.prompts.vocabulary : [];
    const head = this.classEmbed[this.classEmbed.length - 1]!;
    const chunkSize = Math.min(call.promptChunk, scorer.maxWidth);

    const results: Prediction[][] = settings.map(() => []);
    for (const [i, placement] of placements.entries()) {
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

      const streams = settings.map((s) => ({
        instances: tasks.has('instances')
          ? new InstanceStream(q, p, pixelBoxes, { threshold: s.threshold, nmsThreshold: s.nmsThreshold, topK: s.topK })
          : null,
        semantic: tasks.has('semantic') ? new SemanticStream(q, s.semanticTemperature, s.semanticBackground) : null,
      }));
      // Grounding: per sentence prompt, the first query with the best score.
      const best = new Map<number, { query: number; score: number }>();
      const tAlign = performance.now();
      const semanticStreams = streams.flatMap((t) => (t.semantic ? [t.semantic] : []));
      // Each chunk is scored once per temperature whose statistics the scorer makes; one pass at
      // any temperature when none (the statistics are then unused).
      const temperatures = [...new Set(semanticStreams.filter((t) => t.fixedShift).map((t) => t.inverseTemperature))];
      const unfixed = semanticStreams.filter((t) => !t.fixedShift);
      if (rows && vocabulary.length > 0) {
        const query = queryKeys(head, outputs.hidden, i);
        for (let start = 0; start < vocabulary.length; start += chunkSize) {
          const count = Math.min(chunkSize, vocabulary.length - start);
          const width = scorer.width(count);
          const unitPrompts = yield* rows.chunk(start, count, width);
          let values: Float32Array | null = null;
          let promptBest: Float32Array | undefined;
          for (const inverseTemperature of temperatures.length > 0 ? temperatures : [1]) {
            const alike = semanticStreams.filter((t) => t.fixedShift && t.inverseTemperature === inverseTemperature);
            // Streams of one temperature have seen the same columns: one normaliser, one prior.
            const prior = alike[0]?.prior() ?? new Float32Array(q);
            const scored: PromptChunkValues = yield* scoreOn({
              ...query,
              unitPrompts,
              count,
              width,
              inverseTemperature,
              prior,
            });
            values ??= firstColumns(scored.scores, q, width, count);
            promptBest ??= scored.best;
            for (const stream of alike) stream.addStats(values, start, count, scored, width);
          }
          if (!values) throw new Error('predict: a chunk was not scored');
          for (const stream of streams) stream.instances?.add(values, start, count, promptBest);
          if (unfixed.length > 0) {
            const scores = tf.tensor2d(values, [q, count]);
            for (const stream of unfixed) stream.add(scores, values, start, count);
            scores.dispose();
          }
        }
      }
      const sentenceCount = outputs.sentenceLogits.shape[2];
      if (sentenceCount > 0) {
        const start = vocabulary.length;
        const scores = tf.tidy(
          () =>
            tf.sigmoid(
              tf.reshape(tf.slice(outputs.sentenceLogits, [i, 0, 0], [1, q, sentenceCount]), [q, sentenceCount]),
            ) as tf.Tensor2D,
        );
        const values = scores.dataSync() as Float32Array;
        for (const stream of streams) {
          stream.instances?.add(values, start, sentenceCount);
          stream.semantic?.add(scores, values, start, sentenceCount);
        }
        scores.dispose();
        if (tasks.has('grounding')) {
          for (let c = 0; c < sentenceCount; c++) {
            if (entries[start + c]!.kind !== 'sentence') continue;
            let k = 0;
            for (let j = 1; j < q; j++) if (values[j * sentenceCount + c]! > values[k * sentenceCount + c]!) k = j;
            best.set(start + c, { query: k, score: values[k * sentenceCount + c]! });
          }
        }
      }
      alignment += performance.now() - tAlign;

      const picks = streams.map((stream) => stream.instances?.picks() ?? []);
      // One RLE per query, the same object in every variant that keeps the query.
      const maskRles = new Map<number, CompressedRle>();
      if (withMasks) {
        const queries = [
          ...picks.flatMap((list) => list.map((pick) => pick.query)),
          ...[...best.values()].map((b) => b.query),
        ];
        forEachQueryMask(masks, i, queries, (query, logits) => {
          const map = { logits, height: maskH, width: maskW, stride };
          maskRles.set(query, compressRle(pasteInstanceMaskRle(map, inputBox(query), placement)));
        });
      }
      const maskFor = (query: number): CompressedRle | null =>
        withMasks ? getOrThrow(maskRles, query, 'predict: instance masks') : null;
      // In prompt order (only sentences have a best query).
      const grounding = (): GroundingResult[] =>
        [...best.entries()]
          .sort(([a], [b]) => a - b)
          .map(([index, b]) => ({
            sentence: entries[index]!.text,
            promptIndex: index,
            score: b.score,
            box: toResultBox(b.query),
            mask: maskFor(b.query),
            query: b.query,
          }));
      // Made once for the image, shared by every variant's accumulation and confidence.
      const masksT = tasks.has('semantic') ? tf.tidy(() => cellMaskProbabilities(imageMaskLogits(masks, i))) : null;
      try {
        settings.forEach((s, v) => {
          const { semantic: accumulated } = streams[v]!;
          const instances: InstanceResult[] = picks[v]!.map((pick) => {
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
          let semantic: SemanticResult | null = null;
          if (accumulated && masksT) {
            const geometry = {
              maskH,
              maskW,
              stride,
              resizedW: placement.resizedWidth,
              resizedH: placement.resizedHeight,
              width: placement.width,
              height: placement.height,
            };
            const labels = accumulated.labels(masksT, geometry, s.semanticBackground, s.semanticThreshold);
            semantic = {
              width: placement.width,
              height: placement.height,
              labels,
              prompts: texts,
            };
          }
          results[v]!.push({
            width: placement.width,
            height: placement.height,
            prompts: entries,
            instances,
            semantic,
            grounding: tasks.has('grounding') ? grounding() : [],
            warnings: [...warnings],
          });
        });
      } finally {
        masksT?.dispose();
      }
    }
    this.lastTimings = {
      preprocess: call.preprocessMs,
      network: tNet,
      postprocess: performance.now() - t0,
      alignment,
    };
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

/** The first `count` columns of a row-major [rows, width] array (the array itself when nothing is cut). */
function firstColumns(values: Float32Array, rows: number, width: number, count: number): Float32Array {
  if (count === width) return values;
  const out = new Float32Array(rows * count);
  for (let r = 0; r < rows; r++) out.set(values.subarray(r * width, r * width + count), r * count);
  return out;
}

/** VisionLanguageAlign.queryKeys of image i's hidden queries, as host values (made once per image). */
function queryKeys(
  head: VisionLanguageAlign,
  hidden: tf.Tensor3D,
  i: number,
): { keys: Float32Array; offsets: Float32Array } {
  const [, q, d] = hidden.shape;
  const query = tf.tidy(() =>
    head.queryKeys(tf.reshape(tf.slice(hidden, [i, 0, 0], [1, q, d]), [q, d]) as tf.Tensor2D),
  );
  try {
    return { keys: query.keys.dataSync() as Float32Array, offsets: query.offsets.dataSync() as Float32Array };
  } finally {
    tf.dispose([query.keys, query.offsets]);
  }
}
