/** Learning-rate schedules: linear warmup, then constant, step or cosine decay. */
export interface ScheduleConfig {
  baseLr: number;
  /** Steps of linear warmup from `warmupFactor * baseLr` up to `baseLr`. */
  warmupSteps: number;
  warmupFactor: number;
  decay: 'constant' | 'step' | 'cosine';
  /** 'step': multiply by `gamma` at each of these steps. */
  milestones?: number[];
  gamma?: number;
  /** 'cosine': the total number of steps, and the floor as a fraction of baseLr. */
  totalSteps?: number;
  minFactor?: number;
}

/** The learning rate for (0-based) step `step`. */
export function learningRateAt(config: ScheduleConfig, step: number): number {
  let factor = 1;
  if (config.decay === 'step') {
    for (const m of config.milestones ?? []) if (step >= m) factor *= config.gamma ?? 0.1;
  } else if (config.decay === 'cosine') {
    const total = config.totalSteps ?? 1;
    const min = config.minFactor ?? 0;
    const t = Math.min(Math.max(step / total, 0), 1);
    factor = min + (1 - min) * 0.5 * (1 + Math.cos(Math.PI * t));
  }
  if (step < config.warmupSteps) {
    const alpha = step / config.warmupSteps;
    factor *= config.warmupFactor * (1 - alpha) + alpha;
  }
  return config.baseLr * factor;
}
