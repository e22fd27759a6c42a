import { Redis } from 'ioredis';
import { parseRedisUrl } from './redis-url.js';

export interface RedisLinkOptions {
  /** Give up when Redis has been unreachable this long (ms). */
  giveUpMs: number;
  log: (line: string) => void;
  /** Called each time the connection is back after a loss (not on the first connect). */
  onReconnect?: () => void;
}

/**
 * One Redis connection for BullMQ that rides out an outage: commands wait while it reconnects
 * (every 0.1-2 s), a line is logged when it goes and when it comes back, and past `giveUpMs`
 * without Redis `failed` rejects with an error that says so. BullMQ duplicates this connection
 * for its blocking reads; the duplicates inherit the same retry behaviour.
 */
export class RedisLink {
  readonly client: Redis;
  readonly where: string;
  /** Rejects when the link gives up; never resolves. */
  readonly failed: Promise<never>;
  private downSince: number | null = Date.now();
  private everReady = false;
  private toldWaiting = false;
  private lastError = '';
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(url: string, options: RedisLinkOptions) {
    const { host, port } = parseRedisUrl(url);
    this.where = `${host}:${port}`;
    this.client = new Redis(url, {
      maxRetriesPerRequest: null,
      retryStrategy: (times) => Math.min(100 * times, 2000),
    });
    let giveUp!: (error: Error) => void;
    this.failed = new Promise<never>((_, reject) => (giveUp = reject));
    this.failed.catch(() => undefined);
    this.client.on('error', (error: Error) => {
      this.lastError = (error as NodeJS.ErrnoException).code ?? error.message;
      if (!this.everReady && !this.toldWaiting) {
        this.toldWaiting = true;
        options.log(
          `cannot reach Redis at ${this.where} (${this.lastError}); retrying (giving up after ${options.giveUpMs / 1000} s)`,
        );
      }
    });
    this.client.on('close', () => {
      if (this.closed || this.downSince !== null) return;
      this.downSince = Date.now();
      options.log(
        `lost the connection to Redis at ${this.where}${this.lastError ? ` (${this.lastError})` : ''}; reconnecting (giving up after ${options.giveUpMs / 1000} s)`,
      );
    });
    this.client.on('ready', () => {
      if (this.downSince !== null && this.everReady)
        options.log(
          `reconnected to Redis at ${this.where} after ${((Date.now() - this.downSince) / 1000).toFixed(1)} s`,
        );
      const back = this.everReady;
      this.everReady = true;
      this.downSince = null;
      if (back) options.onReconnect?.();
    });
    this.timer = setInterval(
      () => {
        if (this.closed || this.downSince === null || Date.now() - this.downSince < options.giveUpMs) return;
        const what = this.everReady ? 'lost the connection to' : 'could not connect to';
        giveUp(
          new Error(
            `${what} Redis at ${this.where} and it stayed unreachable for ${options.giveUpMs / 1000} s${this.lastError ? ` (${this.lastError})` : ''}; giving up`,
          ),
        );
        void this.close();
      },
      Math.min(500, options.giveUpMs),
    );
    this.timer.unref();
  }

  /** `work`, or the give-up error if the link gives up first. */
  guard<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.failed]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.client.disconnect();
  }
}
