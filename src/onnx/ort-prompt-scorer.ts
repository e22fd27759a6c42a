/**
 * Vocabulary chunk scoring on an ONNX Runtime (Node's or the page's): a prompt-score export
 * (prompt-score-export.ts), one session per chunk width, answering PromptChunkScorer's jobs.
 */
import {
  type PromptChunkJob,
  type PromptChunkScorer,
  type PromptChunkValues,
  SEMANTIC_BLOCK,
} from '../modeling/prompt-chunk-scores.js';
import type { PromptScoreGraphEntry, PromptScoreManifest } from './prompt-score-export.js';
import type { OrtSessionLike, OrtTensorFactory } from './segmented-network.js';

export class OrtPromptScorer implements PromptChunkScorer {
  readonly maxWidth: number;
  /** Milliseconds in ONNX Runtime and runs since creation. */
  readonly totals = { ms: 0, runs: 0 };

  /** `sessions`: one per graph of `manifest`, in its order. */
  constructor(
    readonly manifest: PromptScoreManifest,
    private readonly sessions: readonly OrtSessionLike[],
    private readonly tensor: OrtTensorFactory,
  ) {
    if (sessions.length !== manifest.graphs.length)
      throw new Error(`OrtPromptScorer: ${sessions.length} sessions for ${manifest.graphs.length} graphs`);
    this.maxWidth = Math.max(...manifest.shape.widths);
  }

  width(count: number): number {
    const width = this.manifest.shape.widths.find((w) => w >= count);
    if (width === undefined)
      throw new Error(`OrtPromptScorer: a chunk of ${count} prompts is wider than every graph (${this.maxWidth})`);
    return width;
  }

  async score(job: PromptChunkJob): Promise<PromptChunkValues> {
    const { queries, dim } = this.manifest.shape;
    const index = this.manifest.graphs.findIndex((g) => g.width === job.width);
    const graph = this.manifest.graphs[index];
    const session = this.sessions[index];
    if (!graph || !session) throw new Error(`OrtPromptScorer: no graph for chunks of ${job.width} prompts`);
    const sizes: [string, Float32Array, number][] = [
      ['keys', job.keys, queries * dim],
      ['offsets', job.offsets, queries],
      ['prompts', job.prompts, job.width * dim],
      ['prior', job.prior, queries],
    ];
    for (const [name, data, size] of sizes)
      if (data.length !== size)
        throw new Error(`OrtPromptScorer: '${name}' has ${data.length} values, the graph takes ${size}`);
    if (!(job.count > 0 && job.count <= job.width))
      throw new Error(`OrtPromptScorer: ${job.count} prompts in a chunk of ${job.width}`);
    const columns = new Float32Array(job.width).fill(1, 0, job.count);
    const t0 = performance.now();
    const out = await session.run({
      keys: this.tensor('float32', job.keys, [queries, dim]),
      offsets: this.tensor('float32', job.offsets, [queries, 1]),
      prompts: this.tensor('float32', job.prompts, [job.width, dim]),
      columns: this.tensor('float32', columns, [1, job.width]),
      inverseTemperature: this.tensor('float32', Float32Array.of(job.inverseTemperature), [1]),
      prior: this.tensor('float32', job.prior, [queries, 1]),
    });
    this.totals.ms += performance.now() - t0;
    this.totals.runs++;
    return {
      scores: output(out, graph, 'scores', queries * job.width),
      best: output(out, graph, 'best', job.width),
      blockSums: output(out, graph, 'blockSums', queries * (job.width / SEMANTIC_BLOCK)),
      bound: output(out, graph, 'bound', job.width),
    };
  }

  async release(): Promise<void> {
    await Promise.all(this.sessions.map((s) => s.release()));
  }
}

function output(
  out: Record<string, { data: unknown }>,
  graph: PromptScoreGraphEntry,
  key: keyof PromptScoreGraphEntry['outputs'],
  size: number,
): Float32Array {
  const data = out[graph.outputs[key]]?.data;
  if (!(data instanceof Float32Array) || data.length !== size)
    throw new Error(`OrtPromptScorer: ${graph.file} gave no ${size} values for '${key}'`);
  return data;
}
