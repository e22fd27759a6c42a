/**
 * An export made but not yet written (Node): held in this thread, or in the thread that recorded
 * it (src/inference/export-thread.ts), until the export cache writes it to a folder.
 */
import { exportBytes, type ExportShape, type NetworkExport } from './export-network.js';
import { writeNetworkExport } from './export-files.js';
import type { ExportProgress } from './export-progress.js';
import type { TextExport, TextExportShape } from './text-export.js';
import { textExportBytes, writeTextExport } from './text-export-files.js';

export interface PendingExport {
  /** The bytes it writes (graphs and weights files). */
  readonly bytes: number;
  /** Writes it to `dir`; a write error keeps its errno code (the cache then tries its next folder). */
  write(dir: string): Promise<void>;
  /** Frees what it holds (its thread, for one made in another). */
  release(): void;
}

/**
 * Makes the network's and the text tower's exports from the model's files rather than from the
 * loaded network (OrtEngineOptions.exporter): the recording holds only the part it records.
 */
export interface ModelFileExporter {
  network(shape: ExportShape, hash: string, onProgress?: ExportProgress): Promise<PendingExport>;
  textTower(shape: TextExportShape, hash: string, onProgress?: ExportProgress): Promise<PendingExport>;
}

/** Reports the bytes written as 'write' progress of `total`. */
function writeProgress(total: number, onProgress: ExportProgress | undefined): ((bytes: number) => void) | undefined {
  if (!onProgress) return undefined;
  let done = 0;
  return (bytes) => {
    done += bytes;
    onProgress({ phase: 'write', done, total, unit: 'byte' });
  };
}

export function pendingNetworkExport(exported: NetworkExport, onProgress?: ExportProgress): PendingExport {
  const bytes = exportBytes(exported);
  return {
    bytes,
    write: (dir) => writeNetworkExport(dir, exported, writeProgress(bytes, onProgress)),
    release: () => undefined,
  };
}

export function pendingTextExport(exported: TextExport, onProgress?: ExportProgress): PendingExport {
  const bytes = textExportBytes(exported);
  return {
    bytes,
    write: (dir) => writeTextExport(dir, exported, writeProgress(bytes, onProgress)),
    release: () => undefined,
  };
}
