/**
 * The model folder format, shared by the Node loader (model-files.ts, reads with fs) and the
 * browser loader (src/browser/load-model-browser.ts, reads fetched bytes): file names, the
 * config.json parser and its structural check, the word tokenizer file, and the check and
 * assignment of the weights. No Node imports here.
 *
 * A folder holds config.json ({"format": "ape-model", "version": 1, "config": ApeConfig}),
 * model.safetensors (every parameter by its dotted name, F32; F16/BF16 accepted) and the
 * tokenizer's vocabulary (tokenizer.json for the word tokenizer, the BPE merges file for CLIP).
 */
import { tf } from '../engine/engine.js';
import { toFloat32, type SafetensorsDtype, type SafetensorsEntry, type SafetensorsFile } from '../io/safetensors.js';
import { APE_CONFIG_SHAPE, tinyConfig, validateConfig, type ApeConfig } from '../modeling/config.js';
import { checkedMerge } from '../util/checked-merge.js';
import { WordTokenizer } from '../text/word-tokenizer.js';
import { getOrThrow } from '../util/checked.js';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const WORD_TOKENIZER_FILE = 'tokenizer.json';

export interface ModelConfigFile {
  format: 'ape-model';
  version: 1;
  config: ApeConfig;
}

/** What `saveModel` writes as config.json. */
export function modelConfigFile(config: ApeConfig): ModelConfigFile {
  return { format: 'ape-model', version: 1, config };
}

function parseJsonText(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: not valid JSON (${(e as Error).message})`);
  }
}

/** The configuration inside a config.json's text: format, version, every field's presence and type, then consistency. */
export function parseModelConfig(text: string, source = CONFIG_FILE): ApeConfig {
  const file = parseJsonText(text, source) as Partial<ModelConfigFile> | null;
  if (!file || typeof file !== 'object' || file.format !== 'ape-model')
    throw new Error(`${source}: 'format' must be "ape-model"`);
  if (file.version !== 1) throw new Error(`${source}: unsupported version ${String(file.version)}`);
  return checkModelConfig(file.config, source);
}

/**
 * Structural check of a config read from a file against the preset shape (util/checked-merge):
 * every setting present with the right type (lists are lists; `neck` and `fusion` may be null;
 * settings that are null in the presets may be missing), then `validateConfig`.
 */
export function checkModelConfig(value: unknown, source: string): ApeConfig {
  if (!value || typeof value !== 'object' || Array.isArray(value))
    throw new Error(`${source}: 'config' must be an object`);
  const config = checkedMerge(
    tinyConfig(),
    value,
    { ...APE_CONFIG_SHAPE, missing: 'error', unknown: 'keep' },
    (path, why) => {
      throw new Error(`${source}: config.${path} ${why}`);
    },
  );
  try {
    validateConfig(config);
  } catch (e) {
    throw new Error(`${source}: ${(e as Error).message}`);
  }
  return config;
}

/** The tokenizer file a config needs, by name (the last path component of a CLIP vocabFile). */
export function tokenizerFileName(config: ApeConfig): string {
  const t = config.text.tokenizer;
  return t.kind === 'word'
    ? WORD_TOKENIZER_FILE
    : t.vocabFile.slice(Math.max(t.vocabFile.lastIndexOf('/'), t.vocabFile.lastIndexOf('\\')) + 1);
}

/** A word tokenizer from the text of its tokenizer.json. */
export function parseWordTokenizer(text: string, source = WORD_TOKENIZER_FILE): WordTokenizer {
  return WordTokenizer.fromJSON(parseJsonText(text, source), source);
}

/** Name, dtype and shape of one tensor of a weights file (a safetensors header entry or a read tensor). */
export interface WeightInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: readonly number[];
}

const FLOAT_DTYPES: readonly SafetensorsDtype[] = ['F32', 'F16', 'BF16'];

/**
 * Checks a weights file against the model's parameters before anything is assigned: a missing
 * parameter, a shape that differs, a non-float dtype or a tensor the model does not have stops
 * with an error naming it (and both shapes).
 */
export function checkWeights(
  params: ReadonlyMap<string, tf.Variable>,
  tensors: Iterable<WeightInfo>,
  source: string,
  modelName: string,
): void {
  const inFile = new Map<string, WeightInfo>();
  for (const t of tensors) inFile.set(t.name, t);
  for (const [name, v] of params) {
    const t = inFile.get(name);
    if (!t) throw new Error(`${source}: parameter '${name}' [${v.shape.join(', ')}] is missing`);
    if (t.shape.length !== v.shape.length || t.shape.some((d, i) => d !== v.shape[i])) {
      throw new Error(
        `${source}: parameter '${name}' has shape [${t.shape.join(', ')}], the model needs [${v.shape.join(', ')}]`,
      );
    }
    if (!FLOAT_DTYPES.includes(t.dtype))
      throw new Error(`${source}: parameter '${name}' has dtype ${t.dtype}; expected F32 (or F16/BF16)`);
  }
  for (const name of inFile.keys()) {
    if (!params.has(name))
      throw new Error(`${source}: tensor '${name}' is not a parameter of the '${modelName}' model`);
  }
}

/** Sets one (already checked) parameter from a read tensor. */
export function assignParameter(variable: tf.Variable, entry: Pick<SafetensorsEntry, 'data'>): void {
  const value = tf.tensor(toFloat32(entry), variable.shape, 'float32');
  variable.assign(value);
  value.dispose();
}

/** The parts of a model the weights go into. */
export interface WeightTarget {
  namedParameters(): Map<string, tf.Variable>;
  readonly config: Pick<ApeConfig, 'name'>;
}

/** Checks (see checkWeights) then assigns every parameter from a parsed safetensors file. */
export function assignWeights(model: WeightTarget, file: SafetensorsFile, source = WEIGHTS_FILE): void {
  const params = model.namedParameters();
  checkWeights(
    params,
    [...file.tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })),
    source,
    model.config.name,
  );
  for (const [name, v] of params) assignParameter(v, getOrThrow(file.tensors, name, source));
}
