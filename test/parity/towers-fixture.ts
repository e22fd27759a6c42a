// Shared loading for the parity tests against ../shared/fixtures/ape-reference (APE's own
// PyTorch outputs with random weights) and its layers/ part.
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf } from '../../src/engine/engine.js';
import { readTorchCheckpoint } from '../../src/io/torch/checkpoint.js';
import { convertTorchCheckpoint, type ConversionReport } from '../../src/convert/convert-checkpoint.js';
import { readSafetensors, toFloat32 } from '../../src/io/safetensors.js';
import { readSafetensorsFile } from '../../src/io/safetensors-node.js';
import { releasedTargets, type SourceTensor } from '../../src/convert/released-mapping.js';
import { assignParameter } from '../../src/inference/model-folder.js';
import { swigluHidden, type Eva02VitConfig } from '../../src/modeling/backbone/eva02-vit.js';
import type { SimpleFeaturePyramidConfig } from '../../src/modeling/backbone/simple-feature-pyramid.js';
import type { ClipTextConfig } from '../../src/text/clip-text-transformer.js';
import { loadReleasedWeights } from '../../src/convert/released-mapping.js';
import { VisionLanguageFusion } from '../../src/modeling/fusion/bi-attention.js';
import { VisionLanguageAlign } from '../../src/modeling/heads/vision-language-align.js';
import { MultiScaleDeformableAttention } from '../../src/modeling/deformable/ms-deform-attn-module.js';
import { Rng } from '../../src/util/random.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const fixtureDir = `${root}../shared/fixtures/ape-reference/`;
export const vocabPath = `${root}../shared/vocab/clip_bpe_simple_vocab_16e6.txt.gz`;

interface ManifestModule {
  name: string;
  tolerance_max_abs: number;
}
const manifest = JSON.parse(readFileSync(`${fixtureDir}manifest.json`, 'utf8')) as { modules: ManifestModule[] };

export function tolerance(moduleName: string): number {
  const m = manifest.modules.find((x) => x.name === moduleName);
  if (!m) throw new Error(`manifest has no module ${moduleName}`);
  return m.tolerance_max_abs;
}

export async function fixtureCheckpoint(prefix: string): Promise<Map<string, SourceTensor>> {
  return (await readTorchCheckpoint(`${fixtureDir}checkpoint.pth`, {
    select: (k) => k.startsWith(prefix),
    upcastHalf: true,
  })) as Map<string, SourceTensor>;
}

/**
 * Loads a fixture checkpoint into a model the way a released checkpoint reaches one: `ape
 * convert`'s converter (releasedTargets: names, layouts, split tensors) writes a safetensors
 * file of parameter names, whose tensors are then assigned by name. Parameters the checkpoint
 * lacks stay as they are and are listed in the report's `missing`.
 */
export async function convertFixtureCheckpoint(
  model: { namedParameters(): Map<string, tf.Variable> },
  dir = fixtureDir,
): Promise<ConversionReport> {
  const params = model.namedParameters();
  const expected = new Map([...params].map(([name, v]) => [name, v.shape]));
  const tmp = await mkdtemp(join(tmpdir(), 'ape-parity-'));
  try {
    const out = join(tmp, 'model.safetensors');
    const report = await convertTorchCheckpoint(`${dir}checkpoint.pth`, out, {
      targets: (key, info) => releasedTargets(key, info.shape.length),
      expected,
      strict: false,
    });
    const file = await readSafetensorsFile(out);
    for (const [name, entry] of file.tensors) assignParameter(params.get(name)!, entry);
    return report;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

export function fixtureCases(dir = fixtureDir) {
  // Copied into a plain Uint8Array so that every view made from it owns its bytes.
  const file = readSafetensors(new Uint8Array(readFileSync(`${dir}cases.safetensors`)), 'cases.safetensors');
  return {
    metadata: file.metadata,
    tensor(name: string): tf.Tensor {
      const e = file.tensors.get(name);
      if (!e) throw new Error(`cases.safetensors has no ${name}`);
      return tf.tensor(toFloat32(e), e.shape, 'float32');
    },
    values(name: string): number[] {
      const e = file.tensors.get(name);
      if (!e) throw new Error(`cases.safetensors has no ${name}`);
      return Array.from(toFloat32(e));
    },
  };
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  if (a.shape.join() !== b.shape.join()) throw new Error(`shape [${a.shape}] vs reference [${b.shape}]`);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

export interface Deviation {
  /** Largest |ours - reference| over the finite reference entries. */
  maxAbs: number;
  /** maxAbs relative to the reference's largest finite magnitude. */
  rel: number;
  /** Entries where the reference is not finite (APE's +inf proposals) and ours differs. */
  nonFiniteMismatches: number;
}

/** How far `ours` is from `reference` (same shape); non-finite reference entries must match exactly. */
export function deviation(ours: tf.Tensor, reference: tf.Tensor): Deviation {
  if (ours.shape.join() !== reference.shape.join())
    throw new Error(`shape [${ours.shape}] vs reference [${reference.shape}]`);
  const a = ours.dataSync();
  const b = reference.dataSync();
  let maxAbs = 0;
  let scale = 0;
  let nonFiniteMismatches = 0;
  for (let i = 0; i < b.length; i++) {
    if (!Number.isFinite(b[i]!)) {
      if (a[i] !== b[i]) nonFiniteMismatches++;
      continue;
    }
    const d = Math.abs(a[i]! - b[i]!);
    // NaN in ours counts as the largest possible difference.
    maxAbs = Number.isNaN(d) ? Infinity : Math.max(maxAbs, d);
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return { maxAbs, rel: scale > 0 ? maxAbs / scale : maxAbs, nonFiniteMismatches };
}

/** The fixture ViT: APE-D's options at small size (fixture README, manifest constructor_args). */
export function fixtureVitConfig(): Eva02VitConfig {
  return {
    imgSize: 64,
    patchSize: 16,
    inChans: 3,
    embedDim: 64,
    depth: 4,
    numHeads: 4,
    mlpHidden: swigluHidden(64),
    qkvBias: true,
    windowSize: 2,
    windowBlockIndexes: [0, 2],
    attnSubLn: true,
    mlpSubLn: true,
    rope: true,
    ptHwSeqLen: 16,
    intpFreq: true,
    useAbsPos: true,
    pretrainImgSize: 48,
    pretrainUseClsToken: true,
    layerNormEps: 1e-6,
    dropPathRate: 0.4,
  };
}

export function fixturePyramidConfig(): SimpleFeaturePyramidConfig {
  return {
    inChannels: 64,
    inStride: 16,
    outChannels: 32,
    scaleFactors: [4, 2, 1, 0.5],
    topBlock: true,
    layerNormEps: 1e-6,
  };
}

/** EVA02-CLIP-oracle-tiny's text tower. */
export function fixtureTextConfig(): ClipTextConfig {
  return {
    vocabSize: 49408,
    contextLength: 77,
    width: 32,
    heads: 4,
    layers: 2,
    mlpRatio: 4,
    embedDim: 48,
    layerNormEps: 1e-5,
  };
}

/** The fixture's fusion block (APE-D's options at small size), weights not loaded. */
export function fixtureFusion(): VisionLanguageFusion {
  return new VisionLanguageFusion(
    {
      vDim: 32,
      lDim: 48,
      embedDim: 64,
      numHeads: 4,
      dropout: 0.1,
      initValues: 1 / 6,
      stableSoftmax2d: true,
      clampMinForUnderflow: true,
      clampMaxForOverflow: true,
    },
    new Rng(5),
  );
}

/** The fixture's region-prompt classifier with its weights. */
export async function fixtureAlign(): Promise<VisionLanguageAlign> {
  const m = new VisionLanguageAlign(32, 48, new Rng(6));
  const prefix = 'model_vision.class_embed.0.';
  loadReleasedWeights(m, await fixtureCheckpoint(prefix), { prefix });
  return m;
}

/** The fixture's deformable-attention module with its weights. */
export async function fixtureMsda(): Promise<MultiScaleDeformableAttention> {
  const m = new MultiScaleDeformableAttention(32, 4, 3, 4, new Rng(7));
  const prefix = 'model_vision.transformer.encoder.layers.0.attentions.0.';
  loadReleasedWeights(m, await fixtureCheckpoint(prefix), { prefix });
  return m;
}
