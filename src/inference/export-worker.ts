/**
 * The export thread (export-thread.ts): makes one export from the model's files, then writes it
 * to each folder it is asked to until the thread is ended. Not meant to be run on its own.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initEngine, tf } from '../engine/engine.js';
import type { ExportProgress } from '../onnx/export-progress.js';
import { type PendingExport, pendingNetworkExport, pendingTextExport } from '../onnx/pending-export.js';
import { exportNetworkFromFiles, exportTextTowerFromFiles } from './export-from-files.js';
import type { ExportThreadJob, ExportThreadMemory, FromExportThread, ToExportThread } from './export-thread.js';
import { required } from '../util/checked.js';

const port = required(parentPort, 'export-worker: the parent port (it must run as a worker thread)');
const reply = (message: FromExportThread) => port.postMessage(message);
const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

function memory(): ExportThreadMemory {
  const backend = tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } };
  return { wasmHeapBytes: backend.wasm?.HEAPU8.buffer.byteLength ?? 0, tensorBytes: tf.memory().numBytes };
}

async function make(job: ExportThreadJob, onProgress: ExportProgress): Promise<PendingExport> {
  await initEngine({ backend: 'wasm' });
  if (job.kind === 'network')
    return pendingNetworkExport(
      await exportNetworkFromFiles(job.files, job.shape, job.hash, { ...job.options, onProgress }),
      onProgress,
    );
  return pendingTextExport(await exportTextTowerFromFiles(job.files, job.shape, job.hash, onProgress), onProgress);
}

const onProgress: ExportProgress = (event) => reply({ type: 'progress', event });
try {
  const pending = await make(workerData as ExportThreadJob, onProgress);
  port.on('message', (m: ToExportThread) => {
    pending.write(m.dir).then(
      () => reply({ type: 'written' }),
      (e: unknown) => {
        const code = (e as NodeJS.ErrnoException).code;
        reply({ type: 'error', message: messageOf(e), ...(code ? { code } : {}) });
      },
    );
  });
  reply({ type: 'made', bytes: pending.bytes, memory: memory() });
} catch (e) {
  reply({ type: 'error', message: messageOf(e) });
}
