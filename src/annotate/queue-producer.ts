import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { DEFAULT_MAX_BYTES } from '../io/image-types.js';
import type { AnnotationBackend, PendingImage } from './backend.js';
import {
  DEFAULT_QUEUE_NAME,
  imageIndexOfJob,
  imageJobId,
  type ImageJobData,
  type ImageJobResult,
} from './queue-jobs.js';
import { RedisLink } from './redis-link.js';
import type { AnnotateSettings, ImageOutcome } from './types.js';
import { getOrThrow } from '../util/checked.js';

export interface QueueProducerOptions {
  /** redis://HOST:PORT/DB */
  url: string;
  queueName?: string;
  /** Most of this run's images in Redis at once (their bytes travel in the jobs). */
  inFlight: number;
  /** Give up when Redis stays unreachable this long (ms). */
  giveUpMs: number;
  /** The run's output folder and model fingerprint: with the prompts, they make the run's id. */
  outDir: string;
  model: string;
  log: (line: string) => void;
  /** How often finished jobs are looked for (ms, default 100). */
  pollMs?: number;
}

/** A job that throws this often (a worker error, or a worker with another model) ends as failed. */
const ATTEMPTS = 3;

/** A finished job's result as an outcome; anything else a worker left there is an error of its image. */
function jobOutcome(returnvalue: string, path: string): ImageOutcome {
  let value: unknown;
  try {
    value = JSON.parse(returnvalue);
  } catch {
    value = undefined;
  }
  const v = value as Partial<ImageJobResult> | undefined;
  const ok = v?.ok === true && typeof v.result === 'object' && v.result !== null && Array.isArray(v.result.objects);
  if (ok || (v?.ok === false && typeof v.reason === 'string')) return v as ImageOutcome;
  return { ok: false, reason: `${path}: the worker's result is not an image outcome (${returnvalue.slice(0, 80)})` };
}

/**
 * `ape annotate --queue`: one BullMQ job per image, at most `inFlight` at a time, each carrying
 * the image's bytes; finished jobs are collected, reported (the caller journals them) and only
 * then removed, so a result is never lost between Redis and the journal. Job ids are the run's
 * id and the image's index: a restarted producer adds the same ids (BullMQ keeps one job per id)
 * and collects what finished while it was away. When Redis comes back after an outage, every
 * image in flight is added again, since a Redis without persistence comes back empty.
 */
export class QueueProducer implements AnnotationBackend {
  private link: RedisLink | null = null;
  private queue: Queue | null = null;
  private lostRedis = false;

  constructor(private readonly options: QueueProducerOptions) {}

  /** The run's id: its output folder, prompts and model. */
  runId(settings: AnnotateSettings): string {
    return createHash('sha256')
      .update(JSON.stringify([this.options.outDir, settings, this.options.model]))
      .digest('hex')
      .slice(0, 12);
  }

  async run(
    images: readonly PendingImage[],
    settings: AnnotateSettings,
    report: (index: number, outcome: ImageOutcome) => void,
  ): Promise<void> {
    const o = this.options;
    const link = new RedisLink(o.url, { giveUpMs: o.giveUpMs, log: o.log, onReconnect: () => (this.lostRedis = true) });
    this.link = link;
    const queue = new Queue<ImageJobData, ImageJobResult>(o.queueName ?? DEFAULT_QUEUE_NAME, {
      connection: link.client,
    });
    this.queue = queue;
    queue.on('error', () => undefined); // connection errors: RedisLink reports those
    const run = this.runId(settings);
    const byIndex = new Map(images.map((image) => [image.index, image]));
    const finished = new Set<number>();
    const inFlight = new Set<number>();
    let next = 0;

    const finish = (index: number, outcome: ImageOutcome) => {
      if (finished.has(index) || !byIndex.has(index)) return;
      finished.add(index);
      inFlight.delete(index);
      report(index, outcome);
    };

    const add = async (image: PendingImage): Promise<void> => {
      let bytes: Buffer;
      try {
        const size = (await stat(image.path)).size;
        if (size > DEFAULT_MAX_BYTES)
          throw new Error(`${image.path}: ${size} bytes, more than the ${DEFAULT_MAX_BYTES} an image may have`);
        bytes = await readFile(image.path);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        return finish(image.index, {
          ok: false,
          reason: code ? `cannot read ${image.path}: ${code}` : (error as Error).message,
        });
      }
      const data: ImageJobData = {
        run,
        index: image.index,
        name: image.path,
        image: bytes.toString('base64'),
        settings,
        model: o.model,
      };
      await link.guard(
        queue.add('image', data, {
          jobId: imageJobId(run, image.index),
          attempts: ATTEMPTS,
          removeOnComplete: false,
          removeOnFail: false,
        }),
      );
      inFlight.add(image.index);
    };

    const collect = async (): Promise<number> => {
      const client = await link.guard(queue.client);
      let found = 0;
      for (const state of ['completed', 'failed'] as const) {
        for (const id of await link.guard(queue.getRanges([state], 0, -1))) {
          const index = imageIndexOfJob(run, id);
          if (index === null) continue;
          const [returnvalue, failedReason] = await link.guard(
            client.hmget(queue.toKey(id), 'returnvalue', 'failedReason'),
          );
          const path = byIndex.get(index)?.path ?? `image ${index}`;
          if (state === 'completed' && returnvalue) finish(index, jobOutcome(returnvalue, path));
          else if (state === 'failed')
            finish(index, { ok: false, reason: `the queue gave up on ${path}: ${failedReason ?? 'no reason given'}` });
          // Journaled (or another session's leftover of an image journaled before): gone from Redis.
          await link.guard(queue.remove(id));
          found++;
        }
      }
      return found;
    };

    while (finished.size < images.length) {
      if (this.lostRedis) {
        this.lostRedis = false;
        o.log(`adding the ${inFlight.size} images in flight again, in case Redis lost them`);
        for (const index of [...inFlight]) await add(getOrThrow(byIndex, index, 'images in flight'));
      }
      while (inFlight.size < o.inFlight && next < images.length) {
        const image = images[next++]!;
        if (!finished.has(image.index)) await add(image);
      }
      if ((await collect()) === 0) await link.guard(sleep(o.pollMs ?? 100));
    }
  }

  async close(): Promise<void> {
    await this.queue?.close().catch(() => undefined);
    await this.link?.close();
  }
}
