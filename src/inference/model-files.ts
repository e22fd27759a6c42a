import { copyFile, mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { readSafetensorsFile, readSafetensorsHeaderFile, writeSafetensorsFile } from '../io/safetensors-node.js';
import type { SafetensorsInput } from '../io/safetensors.js';
import { BUNDLED_CLIP_VOCAB } from '../text/bundled-vocab.js';
import { loadClipTokenizer } from '../text/clip-vocab-file.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import { WordTokenizer } from '../text/word-tokenizer.js';
import { validateConfig, type ApeConfig } from '../modeling/config.js';
import { writeJsonFile } from '../util/write-json.js';
import { apeHome, pullModel, type PullOptions } from './model-hub.js';
import { RELEASED_MODELS, findReleasedModel } from './released-models.js';
import { ApeModel } from './ape-model.js';
import {
  CONFIG_FILE,
  WEIGHTS_FILE,
  WORD_TOKENIZER_FILE,
  assignParameter,
  checkWeights,
  modelConfigFile,
  parseModelConfig,
  parseWordTokenizer,
  tokenizerFileName,
} from './model-folder.js';
import type { OrtEngine, OrtEngineOptions } from '../onnx/ort-engine.js';
import { filesHash } from '../onnx/export-files.js';
import { PromptFileStore, promptStoreRoot, type PromptStoreOptions } from './prompt-store.js';
import { ScoringThread } from './scoring-thread.js';
import { getOrThrow } from '../util/checked.js';
import { withParameterValues } from '../nn/module.js';

/**
 * Model folders on disk (Node). The format itself (file names, config.json parsing and checks,
 * weight checks and assignment) is in model-folder.ts, which the browser loader shares.
 */
export { CONFIG_FILE, WEIGHTS_FILE, WORD_TOKENIZER_FILE };

export interface SaveModelOptions {
  /** For CLIP BPE models: the merges file to copy into the folder when it is not there yet (default: the bundled one). */
  vocabPath?: string;
}

export async function saveModel(model: ApeModel, dir: string, options: SaveModelOptions = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  const file = modelConfigFile(model.config);
  const tensors = new Map<string, SafetensorsInput>();
  for (const [name, v] of model.namedParameters())
    tensors.set(name, { dtype: 'F32', shape: v.shape, data: v.dataSync() as Float32Array } as SafetensorsInput);
  await writeSafetensorsFile(join(dir, WEIGHTS_FILE), tensors, { format: 'ape', config: model.config.name });
  const t = model.config.text.tokenizer;
  if (t.kind === 'word') {
    if (!(model.tokenizer instanceof WordTokenizer))
      throw new Error('saveModel: the config names a word tokenizer but the model has another kind');
    await writeJsonFile(join(dir, WORD_TOKENIZER_FILE), model.tokenizer.toJSON());
  } else {
    const target = join(dir, tokenizerFileName(model.config));
    const present = await stat(target).then(
      () => true,
      () => false,
    );
    if (!present) {
      await copyFile(options.vocabPath ?? BUNDLED_CLIP_VOCAB, target);
    }
  }
  await writeJsonFile(join(dir, CONFIG_FILE), file, 2);
}

/** The engines predict can run the network on (see LoadModelOptions.engine). */
export const INFERENCE_ENGINES = ['tfjs', 'ort'] as const;
export type InferenceEngineName = (typeof INFERENCE_ENGINES)[number];

/** Node's inference engine: ONNX Runtime, whose parity with the TF.js reference is tested (docs/onnx.md). */
export const DEFAULT_ENGINE: InferenceEngineName = 'ort';

export interface LoadModelOptions extends PullOptions {
  /** For CLIP BPE models whose folder lacks the merges file (default: the bundled one). */
  vocabPath?: string;
  /**
   * Where predict runs the network: 'ort' (default: ONNX Runtime; the graph is exported on first
   * use per input geometry and prompt count and cached in DIR/onnx, or in $APE_HOME/onnx, default
   * ~/.cache/ape/onnx, when DIR cannot be written) or 'tfjs' (the reference, the engine of training
   * and of `forward`). Code that changes the weights after loading (training) wants 'tfjs': an
   * export holds the weights it was made from.
   */
  engine?: InferenceEngineName;
  /**
   * With engine 'ort': told when an export is made, its cache folders, ONNX Runtime's threads per
   * session, and whether the text tower's TF.js weights are freed once its ONNX export encodes
   * prompts (releaseTextWeights; default: for a frozen tower, as the released models have).
   */
  ort?: OrtEngineForOptions;
  /** Input size (long side, pixels) instead of the config's: smaller is faster and coarser. */
  inputSize?: number;
  /**
   * The on-disk prompt cache (prompt-store.ts): encoded prompt vectors are kept in
   * MODEL/prompt-cache (APE_HOME/prompt-cache when the model folder is read-only), keyed by a
   * sha256 of the model's files, so another process does not encode them again. Default on;
   * false: memory only. `dir` puts the cache elsewhere.
   */
  promptCache?: false | (PromptStoreOptions & { dir?: string });
  /**
   * Score large vocabularies on TF.js on two threads (scoring-thread.ts): default when the
   * machine has more than one core. The thread starts at the first chunk of 1,024 or more prompts.
   */
  scoringThread?: boolean;
}

/**
 * Reads a model folder, or a released model by name ('ape-ti', 'ape-l-d'; pulled into the cache
 * when not there yet, see pullModel). Every parameter must be present with its exact shape.
 */
export async function loadModel(dirOrName: string, options: LoadModelOptions = {}): Promise<ApeModel> {
  const dir =
    (await isDirectory(dirOrName)) || !findReleasedModel(dirOrName)
      ? dirOrName
      : (await pullModel(dirOrName, options)).dir;
  const configPath = join(dir, CONFIG_FILE);
  if (!(await isDirectory(dir))) {
    throw new Error(
      `loadModel: cannot read ${configPath}: ${dir} is neither a model folder nor a released model name (${RELEASED_MODELS.filter(
        (m) => m.preset,
      )
        .map((m) => m.name)
        .join(', ')})`,
    );
  }
  const raw = await readFile(configPath, 'utf8').catch((e: Error) => {
    throw new Error(`loadModel: cannot read ${configPath}: ${e.message}`);
  });
  const config = parseModelConfig(raw, configPath);
  if (options.inputSize !== undefined) withInputSize(config, options.inputSize);

  const { tokenizer, path: tokenizerPath } = await loadModelTokenizer(dir, config, options.vocabPath);
  const engine = options.engine ?? DEFAULT_ENGINE;
  if (!INFERENCE_ENGINES.includes(engine))
    throw new Error(
      `loadModel: engine must be ${INFERENCE_ENGINES.map((e) => `'${e}'`).join(' or ')}, got '${String(engine)}'`,
    );
  // Every parameter is assigned from the file (checkWeights): random initial values would be wasted.
  const model = withParameterValues('zeros', () => new ApeModel(config, tokenizer));
  try {
    await loadWeights(model, join(dir, WEIGHTS_FILE));
  } catch (e) {
    model.dispose();
    throw e;
  }
  if (options.scoringThread ?? availableParallelism() > 1) model.setScoringThread(new ScoringThread());
  if (options.promptCache !== false) {
    const store = options.promptCache ?? {};
    const key = await filesHash([configPath, join(dir, WEIGHTS_FILE), tokenizerPath]);
    const root = store.dir ?? promptStoreRoot(dir, options.home ?? apeHome());
    model.promptCache.setStore(new PromptFileStore(root, key, config.text.encoder.embedDim, store));
  }
  if (engine === 'ort')
    model.setInferenceRunner(
      // A frozen text tower (the released models') is freed once its ONNX export encodes prompts.
      await ortEngineFor(model, dir, {
        releaseTextWeights: !config.text.trainable,
        ...(options.vocabPath !== undefined ? { vocabPath: options.vocabPath } : {}),
        ...options.ort,
      }),
    );
  return model;
}

/**
 * The tokenizer of the model folder `dir` for `config`: its word tokenizer file, or its CLIP BPE
 * merges file (the bundled one, or `vocabPath`, when the folder has none), and the path it came from.
 */
export async function loadModelTokenizer(
  dir: string,
  config: ApeConfig,
  vocabPath?: string,
): Promise<{ tokenizer: TextTokenizer; path: string }> {
  if (config.text.tokenizer.kind === 'word') {
    const path = join(dir, WORD_TOKENIZER_FILE);
    const text = await readFile(path, 'utf8').catch((e: Error) => {
      throw new Error(`loadModel: cannot read ${path}: ${e.message}`);
    });
    return { tokenizer: parseWordTokenizer(text, path), path };
  }
  const inDir = join(dir, tokenizerFileName(config));
  const path = (await stat(inDir).then(
    () => true,
    () => false,
  ))
    ? inDir
    : (vocabPath ?? BUNDLED_CLIP_VOCAB);
  return { tokenizer: await loadClipTokenizer(path, { contextLength: config.text.encoder.contextLength }), path };
}

/**
 * Models whose weights exceed this make their exports in a thread of their own, from the part each
 * export records (export-thread.ts): beside the whole loaded model (ape-ti: 3.09 GB of weights) a
 * recording at 1024 reaches the 4 GB wasm heap's limit, and the text tower's nearly does. Smaller
 * models record from the loaded model, which spares the thread's start (about a second).
 */
export const EXPORT_THREAD_ABOVE = 512 * 1024 * 1024;

export interface OrtEngineForOptions extends OrtEngineOptions {
  /** Make exports in a thread of their own from the model's files (default: above EXPORT_THREAD_ABOVE of weights). */
  exportThread?: boolean;
  /** The CLIP merges file the model was loaded with, when its folder has none (loadModel's vocabPath). */
  vocabPath?: string;
}

/**
 * The ONNX Runtime engine of a model loaded from the folder `dir`: its exports are cached in
 * DIR/onnx, or in $APE_HOME/onnx when DIR cannot be written (see OrtEngineOptions).
 */
export async function ortEngineFor(
  model: ApeModel,
  dir: string,
  options: OrtEngineForOptions = {},
): Promise<OrtEngine> {
  // Loaded on demand: ONNX Runtime's native binding is not needed by TF.js-only users.
  const { OrtEngine } = await import('../onnx/ort-engine.js');
  const { exportThread, vocabPath, ...engineOptions } = options;
  const inThread = exportThread ?? model.parameterCount() * 4 > EXPORT_THREAD_ABOVE;
  const exporter = inThread
    ? new (await import('./export-thread.js')).ExportThreads({
        dir,
        config: model.config,
        ...(vocabPath !== undefined ? { vocabPath } : {}),
      })
    : undefined;
  return new OrtEngine(
    model,
    { dir, files: [join(dir, CONFIG_FILE), join(dir, WEIGHTS_FILE)] },
    { fallbackCacheDir: join(apeHome(), 'onnx'), ...(exporter ? { exporter } : {}), ...engineOptions },
  );
}

const isDirectory = (path: string) =>
  stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );

/** Sets the input size of a loaded config, checked like the rest of it. */
function withInputSize(config: ApeConfig, size: number): void {
  if (!Number.isInteger(size) || size <= 0)
    throw new Error(`loadModel: inputSize must be a positive integer, got ${size}`);
  config.input.size = size;
  validateConfig(config);
}

/**
 * Assigns every parameter of the model from a safetensors file: a missing or extra name, or a
 * shape that differs, stops with an error naming it. Tensors are read in groups of bounded size.
 */
export async function loadWeights(model: ApeModel, path: string): Promise<void> {
  const header = await readSafetensorsHeaderFile(path);
  const params = model.namedParameters();
  checkWeights(params, header.tensors, path, model.config.name);
  const budget = 256 * 1024 * 1024;
  let group: string[] = [];
  let bytes = 0;
  const flush = async () => {
    if (group.length === 0) return;
    const wanted = new Set(group);
    const file = await readSafetensorsFile(path, { filter: (n) => wanted.has(n) });
    for (const name of group) {
      assignParameter(getOrThrow(params, name, `${path}: model parameters`), getOrThrow(file.tensors, name, path));
    }
    group = [];
    bytes = 0;
  };
  for (const t of header.tensors) {
    group.push(t.name);
    bytes += t.end - t.begin;
    if (bytes >= budget) await flush();
  }
  await flush();
}
