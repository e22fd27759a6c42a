/**
 * Where a long export stands (seconds for the tiny model, a minute or more for the released ones):
 * recording the forward (the modules whose weights it has reached, or the text tower's bucket
 * graphs recorded), then writing its files (bytes).
 */
export interface ExportProgressEvent {
  phase: 'record' | 'write';
  done: number;
  total: number;
  unit: 'module' | 'graph' | 'byte';
}

export type ExportProgress = (event: ExportProgressEvent) => void;
