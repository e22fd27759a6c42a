/**
 * A worker thread running the module `name` beside the caller's file: the compiled .js when the
 * caller runs compiled or, when it runs from the TypeScript sources (tests, `tsx`), the .ts file
 * through tsx's register hook (a worker thread does not inherit the main thread's loader).
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** `callerUrl`: the caller's import.meta.url; `name`: the entry's file name without extension. */
export function moduleWorker(callerUrl: string, name: string, options: WorkerOptions = {}): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, callerUrl), options);
  const api = import.meta.resolve('tsx/esm/api');
  const entry = new URL(`./${name}.ts`, callerUrl).href;
  return new Worker(
    `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`,
    { ...options, eval: true },
  );
}
