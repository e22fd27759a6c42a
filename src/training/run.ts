import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Progress } from '../util/progress.js';
import type { TrainConfig } from './config.js';
import { Trainer, type StepReport } from './trainer.js';

/** What the loop drives: a Trainer, or another stepped run with the same checkpoints (ape pretrain). */
export interface SteppedRun {
  readonly step: number;
  /** The step the run ends at when it is not the config's `steps` (pretraining's stem-crop stage comes first). */
  readonly finalStep?: number;
  trainStep(): Promise<StepReport>;
  saveCheckpoint(): Promise<string>;
  /** Writes what the run produces for others to load (a model folder; pretraining's weights). */
  exportModel(): Promise<string>;
}

export interface RunOptions<T extends SteppedRun = Trainer> {
  /** Status lines (dataset summary, resume, checkpoints). */
  log?: (line: string) => void;
  /** Stop after this many steps in this session (the run's `steps` still bounds the total). */
  maxSteps?: number;
  /** Show the progress bar (default true). */
  progress?: boolean;
  /** Called after every step (tests, benchmarks). */
  onStep?: (report: StepReport) => void;
  /** Periodic evaluation hook; gets the trainer and the config's `eval` settings at every `eval.every` steps. */
  evaluate?: (trainer: T, settings: NonNullable<TrainConfig['eval']>) => Promise<Record<string, unknown>>;
  /** Set to request a clean stop (checkpoint, then return) at the next step boundary. */
  signal?: { stop: boolean };
  /** Start a new run even though the output folder holds one (its checkpoints and model are renamed, not deleted). */
  restart?: boolean;
  /** Opens the run (default: Trainer.create, which resumes from the newest checkpoint). */
  open?: (log: (line: string) => void) => Promise<T>;
}

/**
 * Runs (or resumes) training to `config.steps`: a progress bar with the loss terms, steps/s and
 * ETA, a JSON line per `log.every` steps in output/log.jsonl, a checkpoint every
 * `checkpoint.every` steps and at the end (or on a stop request). It writes no dataset: the
 * config's `prepare.synth` folders are the caller's to generate (`ape train` does).
 */
export async function runTraining<T extends SteppedRun = Trainer>(
  config: TrainConfig,
  options: RunOptions<T> = {},
): Promise<T> {
  const log = options.log ?? ((line: string) => console.error(line));
  mkdirSync(config.output, { recursive: true });
  if (options.restart) Trainer.setAside(config, log);
  const trainer = options.open ? await options.open(log) : ((await Trainer.create(config, log)) as unknown as T);
  const start = trainer.step;
  const final = trainer.finalStep ?? config.steps;
  const end = Math.min(final, start + (options.maxSteps ?? Infinity));
  if (start >= end) {
    // Runs keep only their checkpoints in the repository: asking a finished run again rewrites
    // the weights it exports (a model folder, or the pretraining's weights for initFrom).
    const written = await trainer.exportModel();
    log(`nothing to do: the run is at step ${start} of ${final}; its weights are written again to ${written}`);
    return trainer;
  }
  const progress =
    options.progress === false
      ? null
      : new Progress({ total: end - start, label: 'train', unit: 'step', plainEverySeconds: 30 });
  const logFile = join(config.output, 'log.jsonl');
  const averages = new Map<string, number>();
  let windowStart = performance.now();
  let windowSteps = 0;
  let lastSaved = start;
  let lastLosses: Record<string, number> = {};
  while (trainer.step < end && !options.signal?.stop) {
    const report = await trainer.trainStep();
    options.onStep?.(report);
    if (report.skipped) log(`step ${report.step}: gradient norm ${report.gradNorm}; update skipped`);
    for (const [k, v] of Object.entries(report.losses)) averages.set(k, 0.9 * (averages.get(k) ?? v) + 0.1 * v);
    windowSteps++;
    lastLosses = report.losses;
    progress?.tick(1, formatLosses(report.step, averages, lastLosses));
    if (report.step % config.log.every === 0 || report.step === end) {
      const seconds = (performance.now() - windowStart) / 1000;
      appendFileSync(
        logFile,
        `${JSON.stringify({
          step: report.step,
          lr: report.lr,
          gradNorm: report.gradNorm,
          skipped: report.skipped,
          stepsPerSecond: windowSteps / seconds,
          datasets: report.datasets,
          losses: report.losses,
          time: new Date().toISOString(),
        })}\n`,
      );
      windowStart = performance.now();
      windowSteps = 0;
    }
    if (report.step % config.checkpoint.every === 0) {
      const path = await trainer.saveCheckpoint();
      await trainer.exportModel();
      lastSaved = report.step;
      if (!progress) log(`checkpoint ${path}`);
    }
    if (config.eval && options.evaluate && report.step % config.eval.every === 0) {
      const metrics = await options.evaluate(trainer, config.eval);
      appendFileSync(
        logFile,
        `${JSON.stringify({ step: report.step, eval: metrics, time: new Date().toISOString() })}\n`,
      );
      log(`eval at step ${report.step}: ${JSON.stringify(metrics)}`);
    }
  }
  if (trainer.step !== lastSaved) {
    await trainer.saveCheckpoint();
    await trainer.exportModel();
  }
  progress?.finish(formatLosses(trainer.step, averages, lastLosses));
  const modelFolder = options.open ? '' : `, model folder ${Trainer.modelDir(config)}`;
  log(
    `${options.signal?.stop ? 'stopped' : 'reached'} step ${trainer.step}; checkpoint in ${Trainer.checkpointDir(config)}${modelFolder}`,
  );
  return trainer;
}

/** The running averages of the main loss terms, and those of a stage's own terms while the step reports them. */
function formatLosses(step: number, averages: Map<string, number>, current: Record<string, number>): string {
  const stage = ['crop_accuracy'].filter((k) => k in current);
  const shown = ['total', 'class', 'l1', 'giou', 'mask', 'dice', 'enc_class', ...stage].flatMap((k) => {
    const average = averages.get(k);
    return average === undefined ? [] : [`${k} ${average.toFixed(3)}`];
  });
  return `step ${step} ${shown.join(' ')}`;
}
