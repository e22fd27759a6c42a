import { resolve } from 'node:path';
import { runQueueWorker } from '../annotate/queue-worker.js';
import { parseRedisUrl } from '../annotate/redis-url.js';
import { parseCommandArgs, positiveIntegerOption } from './args.js';
import { engineOption } from './engine-option.js';
import { defaultModelDir } from './model-option.js';
import { UsageError, type Command } from './command.js';

const usage = `usage: ape worker --queue redis://HOST:PORT/DB [--queue-name ape-annotate] [--model DIR] [--engine ort|tfjs]
                  [--concurrency 1] [--lock-seconds 30] [--redis-timeout 60]
  Runs the image jobs of 'ape annotate --queue' runs, on as many machines as there are workers:
  each job is one image, answered with its annotations (or why it could not be read). A worker
  that dies leaves its job to another once its lock expires. The model must be the run's (same
  files); jobs of a run with another model are refused. Ctrl-C (or SIGTERM) stops after the jobs
  in hand.
  --queue URL         the Redis the producer uses
  --queue-name NAME   the BullMQ queue (default ape-annotate)
  --model DIR         model folder (default: the shipped models/default)
  --engine NAME       ort (default: ONNX Runtime; the network is exported on first use for each
                      input size and sentence bucket, cached in MODEL/onnx) or tfjs (TF.js on wasm)
  --concurrency N     model processes, and images annotated at once (default 1)
  --lock-seconds S    a dead worker's job goes to another after about this long (default 30)
  --redis-timeout S   give up when Redis stays unreachable this many seconds (default 60)`;

/** `--redis-timeout S` (seconds, default 60). */
export function redisTimeoutOption(value: string | undefined): number {
  if (value === undefined) return 60;
  const s = Number(value);
  if (value.trim() === '' || !Number.isFinite(s) || s <= 0)
    throw new UsageError(`--redis-timeout must be a positive number of seconds, got '${value}'`);
  return s;
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args: argv,
    options: {
      queue: { type: 'string' },
      'queue-name': { type: 'string' },
      model: { type: 'string' },
      engine: { type: 'string' },
      concurrency: { type: 'string' },
      'lock-seconds': { type: 'string' },
      'redis-timeout': { type: 'string' },
    },
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  if (values.queue === undefined) throw new UsageError('--queue is required');
  try {
    parseRedisUrl(values.queue);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const engine = engineOption(values.engine);
  const lockSeconds = values['lock-seconds'] === undefined ? 30 : Number(values['lock-seconds']);
  if (!Number.isFinite(lockSeconds) || lockSeconds < 1)
    throw new UsageError(`--lock-seconds must be a number of at least 1, got '${values['lock-seconds']}'`);
  const log = (line: string) => console.error(`ape worker: ${line}`);
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  const onSignal = (signal: string) => {
    log(`${signal}: stopping after the jobs in hand`);
    stop();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const { jobs } = await runQueueWorker({
    url: values.queue,
    queueName: values['queue-name'],
    modelDir: resolve(values.model ?? defaultModelDir()),
    engine,
    concurrency: positiveIntegerOption(values.concurrency, 'concurrency') ?? 1,
    lockMs: lockSeconds * 1000,
    giveUpMs: redisTimeoutOption(values['redis-timeout']) * 1000,
    log,
    stop: stopped,
  });
  log(`stopped after ${jobs} images`);
  return 0;
}

export const command: Command = {
  name: 'worker',
  summary: 'run queued ape annotate jobs (BullMQ on Redis) with a model',
  usage,
  run,
};
