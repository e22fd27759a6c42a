import type { ExportProgress, ExportProgressEvent } from '../onnx/export-progress.js';
import { Progress } from '../util/progress.js';

/** An export's progress display, and `finish` to end its last bar (before the line that follows it). */
export interface ExportProgressDisplay {
  onProgress: ExportProgress;
  finish(): void;
}

/** What each phase is called on screen. */
const PHASES: Record<ExportProgressEvent['phase'], string> = { record: 'recording', write: 'writing' };

/**
 * The project's progress display for an export (`label` first, e.g. 'ape predict'): a bar with rate
 * and ETA on a terminal, plain lines otherwise, on `stream` (default stderr); one per phase
 * (recording the modules or graphs, then writing, in MB), a new one whenever the phase changes.
 */
export function exportProgressDisplay(label: string, stream?: NodeJS.WriteStream): ExportProgressDisplay {
  let bar: { progress: Progress; key: string; shown: number; scale: number } | null = null;
  const finish = () => {
    bar?.progress.finish();
    bar = null;
  };
  const onProgress: ExportProgress = (event) => {
    const bytes = event.unit === 'byte';
    const scale = bytes ? (event.total >= 1e7 ? 1e6 : 1e3) : 1;
    const key = `${event.phase} ${event.unit} ${event.total}`;
    const done = Math.round(event.done / scale);
    if (!bar || bar.key !== key || done < bar.shown) {
      finish();
      const unit = bytes ? (scale === 1e6 ? 'MB' : 'kB') : event.unit;
      const total = Math.round(event.total / scale);
      bar = {
        progress: new Progress({ total, label: `${label}: ${PHASES[event.phase]}`, unit, stream }),
        key,
        shown: 0,
        scale,
      };
    }
    if (done > bar.shown) {
      bar.progress.tick(done - bar.shown);
      bar.shown = done;
    }
  };
  return { onProgress, finish };
}
