/**
 * `ape annotate` throughput on this machine: images/hour with 1 and 2 local model processes and
 * with 1 and 2 queue workers (BullMQ on a redis-server started on a loopback port), on N
 * synthetic 256x256 scenes with the shipped model. Each setting is one whole run (journal, COCO
 * file) into a fresh folder. Two rates per setting: `wall` counts from the start of the run
 * (model loading included), `steady` from the first finished image to the last. The queue's
 * per-image overhead is measured twice: as the difference of the steady per-image times of 1
 * queue worker and 1 local process (the same model work plus the trip through Redis; on a busy
 * machine the noise of the model work swamps it), and directly, as whole queue runs with the
 * model work taken out: the real producer and Redis, and a BullMQ worker that answers each job
 * with the image's outcome from the local run (median of 5 runs, per image).
 *
 *   npm run bench -- annotate [--images 12]
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listImages } from '../src/annotate/image-list.js';
import { LocalBackend } from '../src/annotate/local-backend.js';
import { modelFingerprint } from '../src/annotate/model-fingerprint.js';
import { QueueProducer } from '../src/annotate/queue-producer.js';
import { runQueueWorker } from '../src/annotate/queue-worker.js';
import { runAnnotation } from '../src/annotate/run-annotation.js';
import type { AnnotationBackend } from '../src/annotate/backend.js';
import { writeSynthDataset } from '../src/data/synth/write-dataset.js';
import { defaultModelDir } from '../src/cli/model-option.js';
import { TestRedis } from '../test/annotate/redis-server.js';
import type { ImageJobData } from '../src/annotate/queue-jobs.js';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { option } from './options.js';

const VOCABULARY = ['circle', 'square', 'triangle', 'star', 'hexagon', 'ring', 'cross', 'heart'];

interface Timing {
  images: number;
  wall_s: number;
  steady_s_per_image: number;
  images_per_hour_wall: number;
  images_per_hour_steady: number;
}

async function timeRun(
  root: string,
  name: string,
  images: string[],
  model: string,
  backend: AnnotationBackend,
): Promise<{ timing: Timing; file: string }> {
  const outDir = join(root, name);
  const finishedAt: number[] = [];
  const t0 = performance.now();
  try {
    await runAnnotation(
      {
        images,
        settings: { vocabulary: VOCABULARY, sentences: [], threshold: 0.3 },
        model,
        outDir,
        progress: () => finishedAt.push(performance.now()),
      },
      backend,
    );
  } finally {
    await backend.close();
  }
  const wall = (performance.now() - t0) / 1000;
  const steady = (finishedAt[finishedAt.length - 1]! - finishedAt[0]!) / 1000 / Math.max(1, finishedAt.length - 1);
  const timing = {
    images: images.length,
    wall_s: Number(wall.toFixed(2)),
    steady_s_per_image: Number(steady.toFixed(3)),
    images_per_hour_wall: Math.round((images.length / wall) * 3600),
    images_per_hour_steady: Math.round(3600 / steady),
  };
  console.log(
    `${name.padEnd(16)} wall ${timing.wall_s.toFixed(1)} s (${timing.images_per_hour_wall} img/h), steady ${timing.steady_s_per_image.toFixed(3)} s/img (${timing.images_per_hour_steady} img/h)`,
  );
  return { timing, file: readFileSync(join(outDir, 'annotations.json'), 'utf8') };
}

async function withQueueWorkers<T>(url: string, modelDir: string, count: number, work: () => Promise<T>): Promise<T> {
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  const log = () => undefined;
  const workers = Array.from({ length: count }, () =>
    runQueueWorker({ url, modelDir, concurrency: 1, lockMs: 30_000, giveUpMs: 60_000, log, stop: stopped }),
  );
  try {
    return await work();
  } finally {
    stop();
    await Promise.all(workers);
  }
}

/** Per-image time of whole queue runs whose worker replays local-1's outcomes instead of running the model. */
async function directOverhead(root: string, url: string, images: string[], model: string): Promise<number> {
  const outcomes = new Map<number, unknown>();
  for (const line of readFileSync(join(root, 'local-1', 'journal.jsonl'), 'utf8')
    .split('\n')
    .slice(1)) {
    if (line) outcomes.set((JSON.parse(line) as { i: number }).i, (JSON.parse(line) as { outcome: unknown }).outcome);
  }
  const queueName = 'ape-bench-overhead';
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  // The real worker decodes the job's bytes before the model runs; so does this one.
  const worker = new Worker<ImageJobData>(
    queueName,
    async (job) => {
      void Buffer.from(job.data.image, 'base64');
      return outcomes.get(job.data.index);
    },
    { connection },
  );
  const perImage: number[] = [];
  try {
    for (let r = 0; r < 5; r++) {
      const outDir = join(root, `overhead-${r}`);
      const producer = new QueueProducer({
        url,
        queueName,
        inFlight: 64,
        giveUpMs: 60_000,
        outDir,
        model,
        log: () => undefined,
      });
      const t0 = performance.now();
      await runAnnotation(
        {
          images,
          settings: { vocabulary: VOCABULARY, sentences: [], threshold: 0.3 },
          model,
          outDir,
          progress: () => undefined,
        },
        producer,
      );
      perImage.push((performance.now() - t0) / images.length);
      await producer.close();
    }
  } finally {
    await worker.close();
    connection.disconnect();
  }
  perImage.sort((a, b) => a - b);
  return Math.round(perImage[2]!);
}

export async function run(argv: string[]): Promise<{ results: Record<string, unknown> }> {
  const n = Number(option(argv, '--images', '12'));
  const root = mkdtempSync(join(tmpdir(), 'ape-bench-annotate-'));
  await writeSynthDataset(join(root, 'synth'), { images: n, seed: 21, size: 256 });
  const images = listImages(join(root, 'synth', 'images'));
  const modelDir = defaultModelDir();
  const model = await modelFingerprint(modelDir);
  const results: Record<string, unknown> = {
    images: n,
    image_size: 256,
    prompts: VOCABULARY.length,
    model: 'models/default',
  };

  const local1 = await timeRun(root, 'local-1', images, model, new LocalBackend(modelDir, 1));
  const local2 = await timeRun(root, 'local-2', images, model, new LocalBackend(modelDir, 2));
  results.local_1 = local1.timing;
  results.local_2 = local2.timing;

  const redis = await TestRedis.start();
  try {
    const producer = (name: string) =>
      new QueueProducer({
        url: redis.url,
        inFlight: 64,
        giveUpMs: 60_000,
        outDir: join(root, name),
        model,
        log: () => undefined,
      });
    // As in the local runs, `wall` includes the workers' model loading (they start with the run).
    const queue1 = await withQueueWorkers(redis.url, modelDir, 1, () =>
      timeRun(root, 'queue-1', images, model, producer('queue-1')),
    );
    const queue2 = await withQueueWorkers(redis.url, modelDir, 2, () =>
      timeRun(root, 'queue-2', images, model, producer('queue-2')),
    );
    results.queue_1 = queue1.timing;
    results.queue_2 = queue2.timing;
    const overheadMs = (queue1.timing.steady_s_per_image - local1.timing.steady_s_per_image) * 1000;
    results.queue_overhead_ms_per_image = Math.round(overheadMs);
    console.log(`queue overhead   ${Math.round(overheadMs)} ms per image (steady, 1 queue worker vs 1 local process)`);
    // The output folders are siblings, so even the relative file names agree.
    const same = [local2, queue1, queue2].every((r) => r.file === local1.file);
    results.same_annotations = same;
    console.log(`same annotations in every setting: ${same}`);
    results.queue_overhead_direct_ms_per_image = await directOverhead(root, redis.url, images, model);
    console.log(
      `queue overhead   ${results.queue_overhead_direct_ms_per_image} ms per image (direct: a run without model work, median of 5)`,
    );
  } finally {
    await redis.down();
  }
  return { results };
}
