import { Worker, type Job } from 'bullmq';
import type { InferenceEngineName } from '../inference/model-files.js';
import { modelFingerprint } from './model-fingerprint.js';
import { ModelPool } from './model-pool.js';
import { DEFAULT_QUEUE_NAME, type ImageJobData, type ImageJobResult } from './queue-jobs.js';
import { RedisLink } from './redis-link.js';
import { RecentLists } from '../util/recent-lists.js';
import { progressFrom } from '../util/progress.js';
import { PROMPT_PROGRESS_FROM } from '../text/prompt-embeddings.js';

export interface QueueWorkerOptions {
  /** redis://HOST:PORT/DB */
  url: string;
  queueName?: string;
  modelDir: string;
  /** Where the model processes run the network (default loadModel's: ort). */
  engine?: InferenceEngineName;
  /** Model processes, and jobs run at once. */
  concurrency: number;
  /**
   * How long a job stays locked to this worker without a renewal (ms). The model runs in its own
   * processes, so renewals keep coming however slow an image is; a worker that dies stops them,
   * and its job goes to another worker about this long after.
   */
  lockMs: number;
  /** Give up when Redis stays unreachable this long (ms). */
  giveUpMs: number;
  log: (line: string) => void;
  /** Resolves when the worker should stop (after the jobs it holds). */
  stop: Promise<void>;
}

/** Times a job abandoned by its worker (dead or frozen) is put back; once more and it fails as poisoned. */
const MAX_STALLS = 3;

/**
 * `ape worker`: takes image jobs from the queue and answers each with the image's outcome, until
 * told to stop or Redis stays away past the give-up time (then it rejects). Jobs whose run used
 * another model are refused, so every result of a run comes from the same weights.
 */
export async function runQueueWorker(o: QueueWorkerOptions): Promise<{ jobs: number }> {
  const model = await modelFingerprint(o.modelDir);
  const pool = new ModelPool(o.modelDir, o.concurrency, {
    ...(o.engine !== undefined ? { engine: o.engine } : {}),
    log: o.log,
  });
  await pool.start();
  o.log(
    `model ${model} loaded in ${o.concurrency} process${o.concurrency === 1 ? '' : 'es'} (${Math.max(...pool.loadMs)} ms)`,
  );
  const link = new RedisLink(o.url, { giveUpMs: o.giveUpMs, log: o.log });
  // A run's prompts are encoded once, before its first image here, with progress lines: the
  // other model processes then read them from the prompt store.
  const prepared = new RecentLists<Promise<void>>(4);
  const prepare = (texts: string[]): Promise<void> => {
    let done = prepared.get('', texts);
    if (!done) {
      done = pool.preparePrompts(
        texts,
        progressFrom(PROMPT_PROGRESS_FROM, { label: 'encoding prompts', unit: 'prompt', lines: o.log }),
      );
      // A failure is the job's; the next job tries again.
      done.catch(() => prepared.clear());
      prepared.set('', texts, done);
    }
    return done;
  };
  let jobs = 0;
  const handle = async (job: Job<ImageJobData, ImageJobResult>): Promise<ImageJobResult> => {
    const d = job.data;
    if (d.model !== model) throw new Error(`the run's model is ${d.model}, this worker's is ${model} (${o.modelDir})`);
    await prepare([...d.settings.vocabulary, ...d.settings.sentences]);
    const outcome = await pool.annotate({ name: d.name, bytes: Buffer.from(d.image, 'base64'), settings: d.settings });
    jobs++;
    return outcome;
  };
  const worker = new Worker<ImageJobData, ImageJobResult>(o.queueName ?? DEFAULT_QUEUE_NAME, handle, {
    connection: link.client,
    concurrency: o.concurrency,
    lockDuration: Math.round(o.lockMs),
    stalledInterval: Math.max(500, Math.round(o.lockMs / 2)),
    maxStalledCount: MAX_STALLS,
  });
  // Connection trouble is RedisLink's to report; anything else is worth a line.
  worker.on('error', (error) => {
    if (!/ECONNREFUSED|ECONNRESET|Connection is closed|EPIPE|ETIMEDOUT/.test(error.message))
      o.log(`queue: ${error.message}`);
  });
  worker.on('failed', (job, error) => {
    if (job) o.log(`job ${job.id} (${job.data.name}) failed: ${error.message}`);
  });
  try {
    await Promise.race([o.stop, link.failed]);
  } finally {
    await Promise.race([worker.close(), link.failed.catch(() => undefined)]);
    await pool.close();
    await link.close();
  }
  return { jobs };
}
