/**
 * Exports made in a thread of their own (Node worker_threads): the thread loads TF.js, records the
 * part of the model that the export holds from the model's files (export-from-files.ts) and writes
 * the export where the cache asks, then ends, its wasm heap with it. The model's own heap, which
 * holds the whole loaded model (ape-ti: 3.09 GB of the 4 GB), never holds a recording.
 */
import type { Worker } from 'node:worker_threads';
import { moduleWorker } from '../util/module-worker.js';
import type { ExportShape } from '../onnx/export-network.js';
import type { ExportProgress, ExportProgressEvent } from '../onnx/export-progress.js';
import type { ModelFileExporter, PendingExport } from '../onnx/pending-export.js';
import type { TextExportShape } from '../onnx/text-export.js';
import type { FileExportOptions, ModelFiles } from './export-from-files.js';

/** What the thread is asked to make (its workerData). */
export type ExportThreadJob =
  | {
      kind: 'network';
      files: ModelFiles;
      shape: ExportShape;
      hash: string;
      options: Omit<FileExportOptions, 'onProgress'>;
    }
  | { kind: 'text'; files: ModelFiles; shape: TextExportShape; hash: string };

/** The wasm heap and tensors of the thread once its export was made (the heap only grows: its peak). */
export interface ExportThreadMemory {
  wasmHeapBytes: number;
  tensorBytes: number;
}

export type FromExportThread =
  | { type: 'progress'; event: ExportProgressEvent }
  | { type: 'made'; bytes: number; memory: ExportThreadMemory }
  | { type: 'written' }
  | { type: 'error'; message: string; code?: string };

export type ToExportThread = { type: 'write'; dir: string };

/** The thread's entry (export-worker.ts). */
const spawn = (job: ExportThreadJob): Worker => moduleWorker(import.meta.url, 'export-worker', { workerData: job });

/** An error from the thread, with the errno code of a failed write (the cache then tries its next folder). */
function threadError(message: string, code?: string): Error {
  return Object.assign(new Error(message), code ? { code } : {});
}

/** A made export held by its thread until written; released, the thread ends. */
export interface ThreadExport extends PendingExport {
  /** The thread's memory once the export was made. */
  readonly memory: ExportThreadMemory;
}

/**
 * Starts a thread that makes `job`'s export: resolves once it is made (held by the thread, which
 * then writes it on request), or rejects with the thread's error, or a note that it stopped
 * (a wasm heap that ran out ends the thread).
 */
export function makeExportInThread(job: ExportThreadJob, onProgress?: ExportProgress): Promise<ThreadExport> {
  const worker = spawn(job);
  let waiting: { resolve: () => void; reject: (e: Error) => void } | null = null;
  let ended: Error | null = null;
  const end = (error: Error) => {
    ended ??= error;
    waiting?.reject(error);
    waiting = null;
  };
  return new Promise<ThreadExport>((resolve, reject) => {
    let made = false;
    worker.on('error', (e) => {
      const error = new Error(`the export thread failed: ${e.message}`);
      if (!made) reject(error);
      end(error);
    });
    worker.on('exit', (code) => {
      const error = new Error(`the export thread stopped (exit code ${code})`);
      if (!made) reject(error);
      end(error);
    });
    worker.on('message', (m: FromExportThread) => {
      if (m.type === 'progress') onProgress?.(m.event);
      else if (m.type === 'made') {
        made = true;
        resolve({
          bytes: m.bytes,
          memory: m.memory,
          write: (dir) =>
            new Promise<void>((done, fail) => {
              if (ended) return fail(ended);
              waiting = { resolve: done, reject: fail };
              worker.postMessage({ type: 'write', dir } satisfies ToExportThread);
            }),
          release: () => {
            ended ??= new Error('the export thread was released');
            void worker.terminate();
          },
        });
      } else if (m.type === 'written') {
        waiting?.resolve();
        waiting = null;
      } else if (!made) {
        made = true;
        void worker.terminate();
        reject(threadError(m.message));
      } else {
        waiting?.reject(threadError(m.message, m.code));
        waiting = null;
      }
    });
  });
}

/** OrtEngineOptions.exporter: each export made in a thread of its own from the model's files. */
export class ExportThreads implements ModelFileExporter {
  constructor(
    private readonly files: ModelFiles,
    private readonly options: Omit<FileExportOptions, 'onProgress'> = {},
  ) {}

  network(shape: ExportShape, hash: string, onProgress?: ExportProgress): Promise<PendingExport> {
    return makeExportInThread({ kind: 'network', files: this.files, shape, hash, options: this.options }, onProgress);
  }

  textTower(shape: TextExportShape, hash: string, onProgress?: ExportProgress): Promise<PendingExport> {
    return makeExportInThread({ kind: 'text', files: this.files, shape, hash }, onProgress);
  }
}
