import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { tf } from '../engine/engine.js';
import { readSafetensorsFile, readSafetensorsHeaderFile, writeSafetensorsFile } from '../io/safetensors-node.js';
import type { SafetensorsInput } from '../io/safetensors.js';
import { validateConfig, type ApeConfig } from '../modeling/config.js';
import { loadClipTokenizer } from '../text/clip-vocab-file.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import { WordTokenizer } from '../text/word-tokenizer.js';
import { ApeModel } from './ape-model.js';
import { tinyConfig } from '../modeling/config.js';

/**
 * A model folder: config.json (the ApeConfig), model.safetensors (every parameter, F32, by its
 * dotted name) and the tokenizer's vocabulary (tokenizer.json for the word tokenizer, the BPE
 * merges file for CLIP).
 */
export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const WORD_TOKENIZER_FILE = 'tokenizer.json';

interface ConfigFile {
  format: 'ape-model';
  version: 1;
  config: ApeConfig;
}

export interface SaveModelOptions {
  /** For CLIP BPE models: the merges file to copy into the folder (when it is not there yet). */
  vocabPath?: string;
}

export async function saveModel(model: ApeModel, dir: string, options: SaveModelOptions = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  const file: ConfigFile = { format: 'ape-model', version: 1, config: model.config };
  const tensors = new Map<string, SafetensorsInput>();
  for (const [name, v] of model.namedParameters()) tensors.set(name, { dtype: 'F32', shape: v.shape, data: v.dataSync() as Float32Array } as SafetensorsInput);
  await writeSafetensorsFile(join(dir, WEIGHTS_FILE), tensors, { format: 'ape', config: model.config.name });
  const t = model.config.text.tokenizer;
  if (t.kind === 'word') {
    if (!(model.tokenizer instanceof WordTokenizer)) throw new Error('saveModel: the config names a word tokenizer but the model has another kind');
    await writeFile(join(dir, WORD_TOKENIZER_FILE), JSON.stringify(model.tokenizer.toJSON()) + '\n');
  } else {
    const target = join(dir, basename(t.vocabFile));
    const present = await stat(target).then(() => true, () => false);
    if (!present) {
      if (!options.vocabPath) throw new Error(`saveModel: pass vocabPath so that ${t.vocabFile} can be copied into ${dir}`);
      await copyFile(options.vocabPath, target);
    }
  }
  await writeFile(join(dir, CONFIG_FILE), JSON.stringify(file, null, 2) + '\n');
}

export interface LoadModelOptions {
  /** For CLIP BPE models whose folder lacks the merges file. */
  vocabPath?: string;
}

/** Reads a model folder; every parameter must be present in the weights with its exact shape. */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<ApeModel> {
  const configPath = join(dir, CONFIG_FILE);
  const raw = await readFile(configPath, 'utf8').catch((e: Error) => {
    throw new Error(`loadModel: cannot read ${configPath}: ${e.message}`);
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (e) {
    throw new Error(`${configPath}: not valid JSON (${(e as Error).message})`);
  }
  const file = parsed as Partial<ConfigFile>;
  if (!file || file.format !== 'ape-model') throw new Error(`${configPath}: 'format' must be "ape-model"`);
  if (file.version !== 1) throw new Error(`${configPath}: unsupported version ${String(file.version)}`);
  const config = checkConfig(file.config, configPath);

  let tokenizer: TextTokenizer;
  const t = config.text.tokenizer;
  if (t.kind === 'word') {
    const path = join(dir, WORD_TOKENIZER_FILE);
    const text = await readFile(path, 'utf8').catch((e: Error) => {
      throw new Error(`loadModel: cannot read ${path}: ${e.message}`);
    });
    tokenizer = WordTokenizer.fromJSON(JSON.parse(text), path);
  } else {
    const inDir = join(dir, basename(t.vocabFile));
    const path = (await stat(inDir).then(() => true, () => false)) ? inDir : options.vocabPath;
    if (!path) throw new Error(`loadModel: ${inDir} is missing; pass vocabPath (the CLIP BPE merges file)`);
    tokenizer = await loadClipTokenizer(path, { contextLength: config.text.encoder.contextLength });
  }
  const model = new ApeModel(config, tokenizer);
  await loadWeights(model, join(dir, WEIGHTS_FILE));
  return model;
}

/**
 * Assigns every parameter of the model from a safetensors file: a missing or extra name, or a
 * shape that differs, stops with an error naming it. Tensors are read in groups of bounded size.
 */
export async function loadWeights(model: ApeModel, path: string): Promise<void> {
  const header = await readSafetensorsHeaderFile(path);
  const params = model.namedParameters();
  const inFile = new Map(header.tensors.map((t) => [t.name, t]));
  for (const [name, v] of params) {
    const t = inFile.get(name);
    if (!t) throw new Error(`${path}: parameter '${name}' [${v.shape.join(', ')}] is missing`);
    if (t.shape.length !== v.shape.length || t.shape.some((d, i) => d !== v.shape[i])) {
      throw new Error(`${path}: parameter '${name}' has shape [${t.shape.join(', ')}], the model needs [${v.shape.join(', ')}]`);
    }
    if (!['F32', 'F16', 'BF16'].includes(t.dtype)) throw new Error(`${path}: parameter '${name}' has dtype ${t.dtype}; expected F32 (or F16/BF16)`);
  }
  for (const name of inFile.keys()) {
    if (!params.has(name)) throw new Error(`${path}: tensor '${name}' is not a parameter of the '${model.config.name}' model`);
  }
  const budget = 256 * 1024 * 1024;
  let group: string[] = [];
  let bytes = 0;
  const flush = async () => {
    if (group.length === 0) return;
    const wanted = new Set(group);
    const file = await readSafetensorsFile(path, { filter: (n) => wanted.has(n) });
    for (const name of group) {
      const v = params.get(name)!;
      const value = tf.tensor(file.tensors.get(name)!.data as Float32Array, v.shape, 'float32');
      v.assign(value);
      value.dispose();
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

/** Structural check of a config read from a file: every field of the preset shape, with the right types. */
function checkConfig(value: unknown, source: string): ApeConfig {
  if (!value || typeof value !== 'object') throw new Error(`${source}: 'config' must be an object`);
  const template = tinyConfig() as unknown as Record<string, unknown>;
  const nullable = new Set(['neck', 'fusion']);
  const walk = (v: unknown, t: unknown, path: string): void => {
    if (t === null || typeof t !== 'object' || Array.isArray(t)) {
      if (Array.isArray(t)) {
        if (!Array.isArray(v)) throw new Error(`${source}: config.${path} must be a list`);
        return;
      }
      if (typeof v !== typeof t) throw new Error(`${source}: config.${path} must be a ${typeof t}, got ${v === null ? 'null' : typeof v}`);
      return;
    }
    if (v === null && nullable.has(path)) return;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${source}: config.${path} must be an object`);
    if (path === 'text.tokenizer') {
      const kind = (v as { kind?: unknown }).kind;
      if (kind === 'word') return;
      if (kind === 'clip-bpe' && typeof (v as { vocabFile?: unknown }).vocabFile === 'string') return;
      throw new Error(`${source}: config.text.tokenizer must be {kind: 'word'} or {kind: 'clip-bpe', vocabFile}`);
    }
    for (const [k, tv] of Object.entries(t as Record<string, unknown>)) {
      const sub = path ? `${path}.${k}` : k;
      if (!(k in (v as Record<string, unknown>))) throw new Error(`${source}: config.${sub} is missing`);
      walk((v as Record<string, unknown>)[k], tv, sub);
    }
  };
  walk(value, template, '');
  const config = value as ApeConfig;
  try {
    validateConfig(config);
  } catch (e) {
    throw new Error(`${source}: ${(e as Error).message}`);
  }
  return config;
}

