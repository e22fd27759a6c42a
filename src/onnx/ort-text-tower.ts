/**
 * The text tower on an ONNX Runtime (Node's or the page's): rows of token ids -> one vector each,
 * through a text export (text-export.ts). Rows are sorted by token count and run a bucket at a
 * time, each run's rows prepared by the same host code as the TF.js forward (textTokenBatch).
 */
import { textTokenBatch } from '../text/clip-text-transformer.js';
import {
  TEXT_MANIFEST_FORMAT,
  type TextExportManifest,
  type TextExportShape,
  type TextGraphEntry,
} from './text-export.js';
import type { OrtSessionLike, OrtTensorFactory } from './segmented-network.js';

/** One run of the tower: rows of the caller's list (by index), padded to `batch` rows of `length` positions. */
export interface TextRun {
  rows: number[];
  batch: number;
  length: number;
}

/**
 * Rows per run when `left` rows remain: the smallest bucket that holds them if they fill more than
 * half of it, else the largest bucket they fill (the smallest bucket when none).
 */
function batchFor(left: number, buckets: readonly number[]): number {
  const up = buckets.find((b) => b >= left);
  if (up !== undefined && left * 2 > up) return up;
  return [...buckets].reverse().find((b) => b <= left) ?? buckets[0]!;
}

/**
 * The runs for rows whose end tokens sit at `ends`: sorted by end (short prompts share short
 * buckets), `batchFor` rows at a time, each at the shortest length bucket past its longest row.
 */
export function planTextRuns(ends: readonly number[], shape: TextExportShape): TextRun[] {
  const order = ends.map((_, i) => i).sort((a, b) => ends[a]! - ends[b]! || a - b);
  const runs: TextRun[] = [];
  for (let at = 0; at < order.length; ) {
    const batch = batchFor(order.length - at, shape.batch);
    const rows = order.slice(at, at + batch);
    const needed = ends[rows[rows.length - 1]!]! + 1;
    const length = shape.lengths.find((l) => l >= needed);
    if (length === undefined)
      throw new Error(`OrtTextTower: a prompt of ${needed} positions is longer than every bucket`);
    runs.push({ rows, batch, length });
    at += rows.length;
  }
  return runs;
}

/** A tower whose weights are larger than this keeps one bucket's session open at a time (each session holds a copy). */
const ONE_SESSION_ABOVE = 256 * 1024 * 1024;

/** Sessions an OrtTextTower keeps open for this export: all its buckets, or one for a large tower. */
export function textSessionsKept(manifest: TextExportManifest): number {
  const weights = manifest.data?.bytes ?? 0;
  return weights > ONE_SESSION_ABOVE ? 1 : manifest.graphs.length;
}

export function checkTextManifest(value: unknown, source: string): TextExportManifest {
  const m = value as Partial<TextExportManifest> | null;
  if (!m || typeof m !== 'object' || m.format !== TEXT_MANIFEST_FORMAT)
    throw new Error(`${source}: not an APE text-tower export (format must be '${TEXT_MANIFEST_FORMAT}')`);
  if (m.version !== 1) throw new Error(`${source}: unsupported text export version ${String(m.version)}`);
  const shape = m.shape;
  if (!shape || !Array.isArray(shape.batch) || !Array.isArray(shape.lengths) || !m.tower || !m.inputs)
    throw new Error(`${source}: missing shape, tower or inputs`);
  if (!Array.isArray(m.graphs) || m.graphs.length !== shape.batch.length * shape.lengths.length)
    throw new Error(
      `${source}: ${m.graphs?.length ?? 0} graphs for ${shape.batch.length} x ${shape.lengths.length} buckets`,
    );
  for (const b of shape.batch)
    for (const l of shape.lengths)
      if (!m.graphs.some((g) => g.batch === b && g.length === l))
        throw new Error(`${source}: no graph for ${b} rows x ${l} positions`);
  return m as TextExportManifest;
}

export class OrtTextTower {
  /** Sessions by bucket, least recently used first. */
  private readonly sessions = new Map<string, Promise<OrtSessionLike>>();
  /** Encodes run one after another (sessions are released between them). */
  private queue: Promise<unknown> = Promise.resolve();
  /** Milliseconds in ONNX Runtime and rows run (padding included) since creation. */
  readonly totals = { ms: 0, rows: 0, runs: 0 };

  /**
   * `open` makes the session of one bucket's graph; at most `maxLoaded` stay open (each holds its
   * own copy of the weights: one for a large tower).
   */
  constructor(
    readonly manifest: TextExportManifest,
    private readonly open: (graph: TextGraphEntry) => Promise<OrtSessionLike>,
    private readonly tensor: OrtTensorFactory,
    private readonly maxLoaded = manifest.graphs.length,
  ) {}

  /** [embedDim] per row of token ids (as the tokenizer gives them), in order; `onProgress(rows done)` after each run. */
  encode(rows: readonly (readonly number[])[], onProgress?: (done: number) => void): Promise<Float32Array[]> {
    const run = this.queue.then(() => this.encodeNow(rows, onProgress));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async encodeNow(
    rows: readonly (readonly number[])[],
    onProgress?: (done: number) => void,
  ): Promise<Float32Array[]> {
    if (rows.length === 0) return [];
    const { contextLength, vocabSize, embedDim, pooling } = this.manifest.tower;
    const tower = { contextLength, vocabSize };
    // Every row checked (length, ids) as the TF.js forward checks them, and its end token found.
    const { endTokenIdx } = textTokenBatch(rows, tower, { pooling });
    const out = new Array<Float32Array>(rows.length);
    let done = 0;
    for (const run of planTextRuns(endTokenIdx, this.manifest.shape)) {
      // Padding rows repeat a real one: rows never mix, and their vectors are dropped.
      const picked = Array.from({ length: run.batch }, (_, k) => rows[run.rows[Math.min(k, run.rows.length - 1)]!]!);
      const batch = textTokenBatch(picked, tower, { pooling, length: run.length });
      const { session, graph } = await this.session(run.batch, run.length);
      const t0 = performance.now();
      const result = await session.run({
        [this.manifest.inputs.ids]: this.tensor('int32', batch.ids, [run.batch * run.length]),
        [this.manifest.inputs.poolWeights]: this.tensor('float32', batch.poolWeights, [run.batch, run.length, 1]),
      });
      this.totals.ms += performance.now() - t0;
      this.totals.rows += run.batch;
      this.totals.runs++;
      const values = result[graph.output]?.data as Float32Array | undefined;
      if (!values || values.length !== run.batch * embedDim)
        throw new Error(
          `OrtTextTower: ${graph.file} gave ${values?.length ?? 0} values for ${run.batch} x ${embedDim}`,
        );
      run.rows.forEach((r, k) => {
        out[r] = values.slice(k * embedDim, (k + 1) * embedDim);
      });
      done += run.rows.length;
      onProgress?.(done);
    }
    return out;
  }

  private async session(batch: number, length: number): Promise<{ session: OrtSessionLike; graph: TextGraphEntry }> {
    const graph = this.manifest.graphs.find((g) => g.batch === batch && g.length === length);
    if (!graph) throw new Error(`OrtTextTower: no graph for ${batch} rows x ${length} positions`);
    const key = graph.file;
    let session = this.sessions.get(key);
    if (session) {
      this.sessions.delete(key); // re-inserted below: the most recently used come last
    } else {
      session = this.open(graph);
      session.catch(() => {
        if (this.sessions.get(key) === session) this.sessions.delete(key);
      });
    }
    this.sessions.set(key, session);
    for (const [k, old] of this.sessions) {
      if (this.sessions.size <= Math.max(1, this.maxLoaded)) break;
      this.sessions.delete(k);
      await old.then((s) => s.release()).catch(() => undefined);
    }
    return { session: await session, graph };
  }

  async release(): Promise<void> {
    await this.queue;
    const open = await Promise.allSettled([...this.sessions.values()]);
    this.sessions.clear();
    await Promise.all(open.flatMap((s) => (s.status === 'fulfilled' ? [s.value.release()] : [])));
  }
}
