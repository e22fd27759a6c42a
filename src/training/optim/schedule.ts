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

/** A run's schedule settings: the config's `schedule` section. */
export interface ScheduleSettings {
  warmupSteps: number;
  warmupFactor: number;
  decay: 'constant' | 'step' | 'cosine';
  milestones: number[];
  /** Milestones as fractions of the planned length (APE: one drop at 900k of 1,080k steps, 0.833). */
  milestoneFractions: number[];
  gamma: number;
  minFactor: number;
}

/**
 * The schedule of a run planned for `plannedSteps`: the cosine's length and the fractional
 * milestones come from the plan, not from how far the run is allowed to go, so lengthening a run
 * later continues the same curve instead of redrawing it.
 */
export function plannedSchedule(baseLr: number, settings: ScheduleSettings, plannedSteps: number): ScheduleConfig {
  const fromFractions = settings.milestoneFractions.map((f) => Math.round(f * plannedSteps));
  const milestones = [...new Set([...settings.milestones, ...fromFractions])].sort((a, b) => a - b);
  return {
    baseLr,
    warmupSteps: settings.warmupSteps,
    warmupFactor: settings.warmupFactor,
    decay: settings.decay,
    milestones,
    gamma: settings.gamma,
    totalSteps: plannedSteps,
    minFactor: settings.minFactor,
  };
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
