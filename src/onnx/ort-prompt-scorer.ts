/**
 * Vocabulary chunk scoring on an ONNX Runtime (Node's or the page's): a prompt-score export
 * (prompt-score-export.ts), one session per graph (a normalising and a scoring graph per chunk
 * width), answering PromptChunkScorer's jobs.
 */
import {
  type PromptChunkJob,
  type PromptChunkScorer,
  type PromptChunkValues,
  type PromptRowsJob,
  SEMANTIC_BLOCK,
} from '../modeling/prompt-chunk-scores.js';
import type { PromptScoreGraphEntry, PromptScoreGraphKind, PromptScoreManifest } from './prompt-score-export.js';
import type { OrtSessionLike, OrtTensorFactory, OrtTensorLike } from './segmented-network.js';

/** Scorers made in this process: each one's unit rows are kept under its own key. */
let scorersMade = 0;

export class OrtPromptScorer implements PromptChunkScorer {
  readonly maxWidth: number;
  readonly rowsKey: string;
  /** Milliseconds in ONNX Runtime and runs since creation (both kinds of graph). */
  readonly totals = { ms: 0, runs: 0 };
  /** The `columns` input of each (width, count) seen: 1 for a prompt, 0 for padding. */
  private readonly columns = new Map<string, Float32Array>();

  /** `sessions`: one per graph of `manifest`, in its order. */
  constructor(
    readonly manifest: PromptScoreManifest,
    private readonly sessions: readonly OrtSessionLike[],
    private readonly tensor: OrtTensorFactory,
  ) {
    if (sessions.length !== manifest.graphs.length)
      throw new Error(`OrtPromptScorer: ${sessions.length} sessions for ${manifest.graphs.length} graphs`);
    this.maxWidth = Math.max(...manifest.shape.widths);
    this.rowsKey = `ort-${++scorersMade}`;
  }

  width(count: number): number {
    const width = this.manifest.shape.widths.find((w) => w >= count);
    if (width === undefined)
      throw new Error(`OrtPromptScorer: a chunk of ${count} prompts is wider than every graph (${this.maxWidth})`);
    return width;
  }

  async normalize(job: PromptRowsJob): Promise<Float32Array> {
    const { dim } = this.manifest.shape;
    checkSize('prompts', job.prompts, job.width * dim);
    const { graph, out } = await this.run('normalize', job.width, {
      prompts: this.tensor('float32', job.prompts, [job.width, dim]),
    });
    return output(out, graph, 'unitPrompts', job.width * dim);
  }

  async score(job: PromptChunkJob): Promise<PromptChunkValues> {
    const { queries, dim } = this.manifest.shape;
    checkSize('keys', job.keys, queries * dim);
    checkSize('offsets', job.offsets, queries);
    checkSize('unitPrompts', job.unitPrompts, job.width * dim);
    checkSize('prior', job.prior, queries);
    if (!(job.count > 0 && job.count <= job.width))
      throw new Error(`OrtPromptScorer: ${job.count} prompts in a chunk of ${job.width}`);
    const { graph, out } = await this.run('scores', job.width, {
      keys: this.tensor('float32', job.keys, [queries, dim]),
      offsets: this.tensor('float32', job.offsets, [queries, 1]),
      unitPrompts: this.tensor('float32', job.unitPrompts, [job.width, dim]),
      columns: this.tensor('float32', this.columnsOf(job.width, job.count), [1, job.width]),
      inverseTemperature: this.tensor('float32', Float32Array.of(job.inverseTemperature), [1]),
      prior: this.tensor('float32', job.prior, [queries, 1]),
    });
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

  /** Runs the `kind` graph of `width` on `feeds`. */
  private async run(
    kind: PromptScoreGraphKind,
    width: number,
    feeds: Record<string, OrtTensorLike>,
  ): Promise<{ graph: PromptScoreGraphEntry; out: Record<string, OrtTensorLike> }> {
    const index = this.manifest.graphs.findIndex((g) => g.kind === kind && g.width === width);
    const graph = this.manifest.graphs[index];
    const session = this.sessions[index];
    if (!graph || !session) throw new Error(`OrtPromptScorer: no ${kind} graph for chunks of ${width} prompts`);
    const t0 = performance.now();
    const out = await session.run(feeds);
    this.totals.ms += performance.now() - t0;
    this.totals.runs++;
    return { graph, out };
  }

  private columnsOf(width: number, count: number): Float32Array {
    const key = `${width}:${count}`;
    let columns = this.columns.get(key);
    if (!columns) {
      if (this.columns.size >= 64) this.columns.clear();
      columns = new Float32Array(width).fill(1, 0, count);
      this.columns.set(key, columns);
    }
    return columns;
  }
}

function checkSize(name: string, data: Float32Array, size: number): void {
  if (data.length !== size)
    throw new Error(`OrtPromptScorer: '${name}' has ${data.length} values, the graph takes ${size}`);
}

function output(
  out: Record<string, OrtTensorLike>,
  graph: PromptScoreGraphEntry,
  key: string,
  size: number,
): Float32Array {
  const name = graph.outputs[key];
  const data = name === undefined ? undefined : out[name]?.data;
  if (!(data instanceof Float32Array) || data.length !== size)
    throw new Error(`OrtPromptScorer: ${graph.file} gave no ${size} values for '${key}'`);
  return data;
}
