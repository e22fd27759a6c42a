/**
 * Vocabulary chunk scoring as ONNX: scorePromptChunk (the alignment logits of one image's queries
 * against a chunk of unit prompt rows, their sigmoid, and the semantic statistics of the chunk)
 * and the prompts' normalisation before it (VisionLanguageAlign.normalizePrompts: once per
 * vocabulary, not per image), recorded from their own TF.js code like the network export, two
 * graphs per chunk width. A chunk is padded to the smallest width that holds it (padding columns
 * are masked out of every statistic, and their scores are dropped). The graphs hold no weights
 * (the query keys are inputs), so the export is a few kilobytes.
 */
import { tf } from '../engine/engine.js';
import type { VisionLanguageAlign } from '../modeling/heads/vision-language-align.js';
import { type PromptChunkInputs, SEMANTIC_BLOCK, scorePromptChunk } from '../modeling/prompt-chunk-scores.js';
import { encodeOnnxModel } from './onnx-model.js';
import { exportModule } from './export-module.js';
import { OPSET } from './kernel-ops.js';

export const PROMPT_SCORE_MANIFEST_FILE = 'onnx-prompt-scores.json';
export const PROMPT_SCORE_MANIFEST_FORMAT = 'ape-onnx-prompt-scores';
/** 2: the scoring graphs take unit rows, and a normalising graph per width makes them. */
export const PROMPT_SCORE_MANIFEST_VERSION = 2;

/** Chunk widths (prompts per run): a short vocabulary pads to 256, a long one runs 4,096 at a time. */
export const PROMPT_SCORE_WIDTHS = [256, 1024, 4096];

/** What an export is made for: the decoder's query count, the prompt vectors' size, and the widths (ascending). */
export interface PromptScoreShape {
  queries: number;
  dim: number;
  widths: number[];
}

/** The folder name of a prompt-score export in a cache (next to the network's exports). */
export function promptScoreExportKey(shape: PromptScoreShape): string {
  return `scores-q${shape.queries}-d${shape.dim}-w${shape.widths.join('.')}`;
}

/** The outputs of each kind of graph, by role. */
const GRAPH_OUTPUTS = { scores: ['scores', 'best', 'blockSums', 'bound'], normalize: ['unitPrompts'] } as const;

export type PromptScoreGraphKind = keyof typeof GRAPH_OUTPUTS;

export interface PromptScoreGraphEntry {
  /** 'normalize': prompts [width, Dl] -> unitPrompts; 'scores': scorePromptChunk's inputs -> its outputs. */
  kind: PromptScoreGraphKind;
  width: number;
  file: string;
  /** The .onnx file's size (a truncated file is caught before ONNX Runtime reads it). */
  bytes: number;
  /** Its outputs' value names, by role. */
  outputs: Record<string, string>;
}

export interface PromptScoreManifest {
  format: typeof PROMPT_SCORE_MANIFEST_FORMAT;
  version: typeof PROMPT_SCORE_MANIFEST_VERSION;
  opset: number;
  model: { name: string; hash: string };
  shape: PromptScoreShape;
  graphs: PromptScoreGraphEntry[];
}

export interface PromptScoreExport {
  manifest: PromptScoreManifest;
  /** The .onnx bytes of each graph, in manifest order. */
  files: Uint8Array[];
}

/** The recorded inputs of a chunk of `width` prompts (zeros: the recording needs shapes only). */
function chunkInputs(queries: number, dim: number, width: number): PromptChunkInputs {
  return {
    keys: tf.zeros([queries, dim]),
    offsets: tf.zeros([queries, 1]),
    unitPrompts: tf.zeros([width, dim]),
    columns: tf.zeros([1, width]),
    inverseTemperature: tf.zeros([1]),
    prior: tf.zeros([queries, 1]),
  };
}

/** One recorded graph: `fn` of `inputs` (every one a graph input), in one segment, with its metadata. */
function recordGraph(
  kind: PromptScoreGraphKind,
  width: number,
  fn: () => Record<string, tf.Tensor>,
  inputs: Record<string, tf.Tensor>,
  model: { name: string; hash: string },
): { entry: PromptScoreGraphEntry; bytes: Uint8Array } {
  const exported = exportModule(fn, inputs, new Map(), { compute: 'shapes' });
  tf.dispose(Object.values(exported.tfjs));
  const segment = exported.graph.segments[0];
  if (exported.graph.segments.length !== 1 || !segment)
    throw new Error(
      `exportPromptScorer: the ${kind} graph read values back to the host (${exported.graph.segments.length} segments)`,
    );
  const names = segment.inputs.map((i) => i.name).sort();
  const expected = Object.keys(inputs).sort();
  if (names.join() !== expected.join())
    throw new Error(
      `exportPromptScorer: the ${kind} graph's inputs are [${names.join(', ')}], not [${expected.join(', ')}]`,
    );
  segment.model.graph.name = `ape_prompt_${kind}_${width}`;
  segment.model.metadata = { model: model.name, model_hash: model.hash, width: String(width) };
  const bytes = encodeOnnxModel(segment.model);
  return {
    entry: { kind, width, file: `${kind}-${width}.onnx`, bytes: bytes.length, outputs: exported.outputs },
    bytes,
  };
}

/**
 * Every width's two graphs (inputs named as PromptChunkInputs' fields): `head`'s prompt
 * normalisation, and scorePromptChunk for `shape.queries` queries.
 */
export function exportPromptScorer(
  head: VisionLanguageAlign,
  shape: PromptScoreShape,
  model: { name: string; hash: string },
): PromptScoreExport {
  const { queries, dim, widths } = shape;
  if (dim !== head.embedDimLanguage)
    throw new Error(`exportPromptScorer: the head takes ${head.embedDimLanguage}-d prompts, not ${dim}`);
  if (widths.length === 0 || widths.some((w, i) => w % SEMANTIC_BLOCK !== 0 || (i > 0 && w <= widths[i - 1]!)))
    throw new Error(
      `exportPromptScorer: widths must be ascending multiples of ${SEMANTIC_BLOCK}, got [${widths.join(', ')}]`,
    );
  const graphs: PromptScoreGraphEntry[] = [];
  const files: Uint8Array[] = [];
  const add = (made: { entry: PromptScoreGraphEntry; bytes: Uint8Array }) => {
    graphs.push(made.entry);
    files.push(made.bytes);
  };
  for (const width of widths) {
    const prompts = tf.zeros([width, dim]) as tf.Tensor2D;
    try {
      add(recordGraph('normalize', width, () => ({ unitPrompts: head.normalizePrompts(prompts) }), { prompts }, model));
    } finally {
      prompts.dispose();
    }
    const inputs = chunkInputs(queries, dim, width);
    try {
      add(
        recordGraph(
          'scores',
          width,
          () => {
            const out = scorePromptChunk(head, inputs);
            return { scores: out.scores, best: out.best, blockSums: out.blockSums, bound: out.bound };
          },
          { ...inputs },
          model,
        ),
      );
    } finally {
      tf.dispose(Object.values(inputs));
    }
  }
  return {
    manifest: {
      format: PROMPT_SCORE_MANIFEST_FORMAT,
      version: PROMPT_SCORE_MANIFEST_VERSION,
      opset: OPSET,
      model,
      shape: { queries, dim, widths: [...widths] },
      graphs,
    },
    files,
  };
}

export function checkPromptScoreManifest(value: unknown, source: string): PromptScoreManifest {
  const m = value as Partial<PromptScoreManifest> | null;
  if (!m || typeof m !== 'object' || m.format !== PROMPT_SCORE_MANIFEST_FORMAT)
    throw new Error(`${source}: not an APE prompt-score export (format must be '${PROMPT_SCORE_MANIFEST_FORMAT}')`);
  if (m.version !== PROMPT_SCORE_MANIFEST_VERSION)
    throw new Error(`${source}: unsupported prompt-score export version ${String(m.version)}`);
  const shape = m.shape;
  if (!shape || !Array.isArray(shape.widths) || !Array.isArray(m.graphs))
    throw new Error(`${source}: missing shape or graphs`);
  for (const w of shape.widths)
    for (const [kind, outputs] of Object.entries(GRAPH_OUTPUTS))
      if (
        !m.graphs.some(
          (g) =>
            g.kind === kind &&
            g.width === w &&
            typeof g.file === 'string' &&
            outputs.every((k) => typeof g.outputs?.[k] === 'string'),
        )
      )
        throw new Error(`${source}: no ${kind} graph for chunks of ${w} prompts with outputs ${outputs.join(', ')}`);
  return m as PromptScoreManifest;
}
