/**
 * A model process of a ModelPool: loads the model once, then annotates the images it is sent,
 * one at a time. An image that cannot be read or decoded is answered with the reason, never
 * with a crash. Started by ModelPool (argv[2]: ModelProcessSpec as JSON); not meant to be run by hand.
 */
import { initEngine } from '../engine/engine.js';
import { loadModel } from '../inference/model-files.js';
import { decodeImage, readImage } from '../io/image-node.js';
import { annotateImage } from './annotate-image.js';
import type { FromModelProcess, ImageTask, ModelProcessSpec, ToModelProcess } from './model-protocol.js';
import type { ImageOutcome } from './types.js';
import type { ApeModel } from '../inference/ape-model.js';
import { required } from '../util/checked.js';

const NO_CHANNEL = 'model-process: must be started by a ModelPool (no IPC channel)';

function send(message: FromModelProcess): void {
  if (!process.send) throw new Error(NO_CHANNEL);
  process.send(message);
}

if (!process.send) throw new Error(NO_CHANNEL);
// The pool is this process's only reason to exist: when it goes (even by SIGKILL), so does this.
process.on('disconnect', () => process.exit(0));

async function outcome(model: ApeModel, task: ImageTask): Promise<ImageOutcome> {
  let image: Awaited<ReturnType<typeof decodeImage>>;
  try {
    image = task.bytes
      ? await decodeImage(task.bytes, { source: task.name })
      : await readImage(required(task.path, `${task.name}: the task's path`), { source: task.name });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { ok: false, reason: code ? `cannot read ${task.name}: ${code}` : (error as Error).message };
  }
  try {
    return { ok: true, result: await annotateImage(model, image, task.settings) };
  } catch (error) {
    return { ok: false, reason: `${task.name}: the model failed on this image: ${(error as Error).message}` };
  }
}

let model: ApeModel;
try {
  const t0 = performance.now();
  const spec = JSON.parse(process.argv[2]!) as ModelProcessSpec;
  await initEngine({ backend: 'wasm' });
  model = await loadModel(spec.modelDir, {
    engine: spec.engine,
    ort: { threads: spec.threads, onExport: (line) => send({ type: 'note', line }) },
    // Processes that share the cores (threads per process) leave TF.js's scoring on one thread each.
    ...(spec.threads !== undefined ? { scoringThread: spec.threads > 1 } : {}),
  });
  send({ type: 'ready', loadMs: Math.round(performance.now() - t0) });
} catch (error) {
  send({ type: 'load-failed', message: (error as Error).message });
  process.exit(1);
}

async function preparePrompts(id: number, texts: string[]): Promise<void> {
  try {
    await model.cachePromptsOnEngine(texts, (done, total) => send({ type: 'encoding', id, done, total }));
    send({ type: 'prompts-ready', id });
  } catch (error) {
    send({ type: 'prompts-ready', id, error: (error as Error).message });
  }
}

// One job at a time, in arrival order (the pool sends a process one job and waits).
let chain = Promise.resolve();
process.on('message', (message: ToModelProcess) => {
  chain = chain.then(async () => {
    if (message.type === 'prompts') return preparePrompts(message.id, message.texts);
    const t0 = performance.now();
    const result = await outcome(model, message.task);
    send({ type: 'done', id: message.id, outcome: result, ms: performance.now() - t0 });
  });
});
