/**
 * Progress for long work: a redrawn bar with rate and ETA on a terminal,
 * plain lines (at most one per `plainEverySeconds`) when output is a file or pipe.
 */
export interface ProgressOptions {
  total: number;
  label: string;
  unit?: string;
  stream?: NodeJS.WriteStream;
  /** Plain lines go here instead of to a stream (a log: a server's, a worker's), never a bar. */
  lines?: (line: string) => void;
  plainEverySeconds?: number;
}

export class Progress {
  private done = 0;
  private readonly start = Date.now();
  private lastPlain = 0;
  private plainDone = -1;
  private extra = '';
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;

  constructor(private readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.tty = !options.lines && Boolean(this.stream.isTTY);
  }

  /** Advances by `n` units; `info` is shown after the rate (loss terms, say). */
  tick(n = 1, info?: string): void {
    this.done += n;
    if (info !== undefined) this.extra = info;
    this.render(false);
  }

  finish(info?: string): void {
    if (info !== undefined) this.extra = info;
    this.render(true);
    if (this.tty) this.stream.write('\n');
  }

  private render(final: boolean): void {
    const { total, label } = this.options;
    const unit = this.options.unit ?? 'it';
    const elapsed = (Date.now() - this.start) / 1000;
    const rate = elapsed > 0 ? this.done / elapsed : 0;
    const eta = rate > 0 ? (total - this.done) / rate : Infinity;
    const pct = total > 0 ? Math.min(1, this.done / total) : 1;
    const stats = `${this.done}/${total} ${formatRate(rate, unit)} elapsed ${formatSeconds(elapsed)} eta ${formatSeconds(eta)}${this.extra ? ` ${this.extra}` : ''}`;
    if (this.tty) {
      const width = 24;
      const filled = Math.round(pct * width);
      this.stream.write(
        `\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(pct * 100).toFixed(0).padStart(3)}% ${stats}\x1b[K`,
      );
      return;
    }
    const every = (this.options.plainEverySeconds ?? 10) * 1000;
    const now = Date.now();
    // The last tick already printed the final count, so `finish` adds a line only if something changed.
    const due = now - this.lastPlain >= every || this.done === total || final;
    if (due && this.done !== this.plainDone) {
      this.lastPlain = now;
      this.plainDone = this.done;
      if (this.options.lines) this.options.lines(`${label}: ${stats}`);
      else this.stream.write(`${label}: ${stats}\n`);
    }
  }
}

/**
 * Progress of work that reports (done, total) as it goes, such as an encoding of new prompts: a
 * Progress from the first report whose total reaches `from` (less takes a moment: nothing is
 * shown), finished when done reaches total.
 */
export function progressFrom(
  from: number,
  options: Omit<ProgressOptions, 'total'>,
): (done: number, total: number) => void {
  let bar: Progress | null = null;
  let shown = 0;
  return (done, total) => {
    if (total < from) return;
    if (!bar || done < shown) {
      bar = new Progress({ ...options, total });
      shown = 0;
    }
    bar.tick(done - shown);
    shown = done;
    if (done >= total) {
      bar.finish();
      bar = null;
    }
  };
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(sec).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function formatRate(rate: number, unit: string): string {
  if (rate >= 1 || rate === 0) return `${rate.toFixed(2)} ${unit}/s`;
  return `${(1 / rate).toFixed(2)} s/${unit}`;
}
