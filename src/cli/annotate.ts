import { resolve } from 'node:path';
import { listImages } from '../annotate/image-list.js';
import { LocalBackend } from '../annotate/local-backend.js';
import { modelFingerprint } from '../annotate/model-fingerprint.js';
import { runAnnotation } from '../annotate/run-annotation.js';
import { parseRedisUrl } from '../annotate/redis-url.js';
import type { AnnotationBackend } from '../annotate/backend.js';
import { parseCommandArgs, positiveIntegerOption } from './args.js';
import { engineOption } from './engine-option.js';
import { defaultModelDir } from './model-option.js';
import { PROMPT_ARGS, promptOptions, thresholdOption } from './prompt-options.js';
import { DEFAULT_SCORE_THRESHOLD } from '../inference/results.js';
import { UsageError, type Command } from './command.js';
import { progressFrom } from '../util/progress.js';
import { PROMPT_PROGRESS_FROM } from '../text/prompt-embeddings.js';

const usage = `usage: ape annotate IMAGES_DIR|LIST.txt --vocab "cat,dog" [--sentence TEXT]... --out DIR
                    [--model DIR] [--engine ort|tfjs] [--threshold ${DEFAULT_SCORE_THRESHOLD}] [--workers N] [--overlays]
                    [--queue redis://HOST:PORT/DB [--queue-name ape-annotate] [--in-flight 64] [--redis-timeout 60]]
  Labels a collection: every image of the folder (searched recursively) or of the list file (one
  path per line) goes through the model once; DIR/annotations.json is a COCO instances file with
  one category per prompt and RLE masks, boxes, areas and scores; DIR/errors.json lists the images
  that could not be read and why. The run is recorded in DIR/journal.jsonl: the same command run
  again after an interruption continues, and writes the same files as an uninterrupted run.
  --vocab LIST       category names, comma-separated (each its own prompt and category)
  --sentence TEXT    a sentence to find (repeatable; its own category)
  --prompt TEXT      APE's rule: split on commas; all sentences if any item has a space, else vocabulary
  --model DIR        model folder (default: the shipped models/default)
  --engine NAME      ort (default: ONNX Runtime; the network is exported on first use for each
                     input size and sentence bucket, cached in MODEL/onnx) or tfjs (TF.js on wasm)
  --threshold T      lowest score kept (0-1, default ${DEFAULT_SCORE_THRESHOLD})
  --workers N        model processes on this machine (default 1)
  --overlays         also draw each image's annotations into DIR/overlays
  --queue URL        send the images to 'ape worker' processes through BullMQ on this Redis instead
  --queue-name NAME  the BullMQ queue (default ape-annotate; workers must name the same)
  --in-flight N      most images waiting in Redis at once (default 64)
  --redis-timeout S  give up when Redis stays unreachable this many seconds (default 60)`;

/** Each prompt is one category, so a prompt given twice would make two categories of one name. */
function distinctPrompts(prompts: { vocabulary: string[]; sentences: string[] }): void {
  const all = [...prompts.vocabulary, ...prompts.sentences];
  const twice = all.find((p, i) => all.indexOf(p) !== i);
  if (twice !== undefined) throw new UsageError(`the prompt '${twice}' is given twice (each prompt is one category)`);
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args: argv,
    options: {
      ...PROMPT_ARGS,
      out: { type: 'string' },
      model: { type: 'string' },
      engine: { type: 'string' },
      threshold: { type: 'string' },
      workers: { type: 'string' },
      overlays: { type: 'boolean' },
      queue: { type: 'string' },
      'queue-name': { type: 'string' },
      'in-flight': { type: 'string' },
      'redis-timeout': { type: 'string' },
    },
    allowPositionals: true,
  });
  if (positionals.length !== 1) throw new UsageError('give one images folder or list file');
  if (values.out === undefined) throw new UsageError('--out is required');
  const engine = engineOption(values.engine);
  const { vocabulary, sentences } = promptOptions(values);
  distinctPrompts({ vocabulary, sentences });
  const settings = { vocabulary, sentences, threshold: thresholdOption(values.threshold) };
  const workers = positiveIntegerOption(values.workers, 'workers') ?? 1;
  if (values.queue !== undefined && values.workers !== undefined)
    throw new UsageError('--workers is for local runs; with --queue, start ape worker processes instead');
  if (values.queue !== undefined && values.engine !== undefined)
    throw new UsageError('--engine is for local runs; with --queue, each ape worker takes its own --engine');
  if (values.queue === undefined) {
    for (const name of ['queue-name', 'in-flight', 'redis-timeout'] as const)
      if (values[name] !== undefined) throw new UsageError(`--${name} goes with --queue`);
  } else {
    try {
      parseRedisUrl(values.queue);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  const modelDir = resolve(values.model ?? defaultModelDir());

  const images = listImages(positionals[0]!);
  const model = await modelFingerprint(modelDir);
  let backend: AnnotationBackend;
  if (values.queue !== undefined) {
    const { QueueProducer } = await import('../annotate/queue-producer.js');
    const { redisTimeoutOption } = await import('./worker.js');
    backend = new QueueProducer({
      url: values.queue,
      queueName: values['queue-name'],
      inFlight: positiveIntegerOption(values['in-flight'], 'in-flight') ?? 64,
      giveUpMs: redisTimeoutOption(values['redis-timeout']) * 1000,
      outDir: resolve(values.out),
      model,
      log: (line) => console.error(`ape annotate: ${line}`),
    });
  } else {
    backend = new LocalBackend(modelDir, workers, {
      engine,
      log: (line) => console.error(`ape annotate: ${line}`),
      onEncoding: progressFrom(PROMPT_PROGRESS_FROM, { label: 'ape annotate: encoding prompts', unit: 'prompt' }),
    });
  }
  console.error(
    `ape annotate: ${images.length} images, ${vocabulary.length + sentences.length} prompts, ${values.queue ? `queue ${values.queue}` : `${workers} model process${workers === 1 ? '' : 'es'} (${engine})`}`,
  );
  try {
    const summary = await runAnnotation(
      {
        images,
        settings,
        model,
        outDir: values.out,
        overlays: values.overlays ?? false,
        log: (line) => console.error(`ape annotate: ${line}`),
      },
      backend,
    );
    console.log(
      `ape annotate: ${summary.annotated} images annotated (${summary.annotations} annotations), ${summary.errors} unreadable (errors.json)` +
        `${summary.resumed > 0 ? `, ${summary.resumed} from an earlier session` : ''}, ${summary.seconds.toFixed(1)} s -> ${resolve(values.out, 'annotations.json')}`,
    );
  } finally {
    await backend.close();
  }
  return 0;
}

export const command: Command = {
  name: 'annotate',
  summary: 'label a folder of images with a vocabulary: a COCO dataset with masks (resumable, local or on a queue)',
  usage,
  run,
};
