import { tf } from '../../engine/engine.js';
import { getOrThrow } from '../../util/checked.js';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Parameters that get no weight decay (default: rank < 2, i.e. biases, norms, scalars). */
  noDecay?: (name: string, variable: tf.Variable) => boolean;
}

/** Serialisable optimizer state: the step count and both moments of every parameter, by name. */
export interface AdamWState {
  step: number;
  moments: Map<string, { m: Float32Array; v: Float32Array }>;
}

/**
 * AdamW with decoupled weight decay, as torch.optim.AdamW: p <- p (1 - lr wd) - lr/bc1 * m /
 * (sqrt(v)/sqrt(bc2) + eps). The update runs on host arrays: one pass over each parameter in
 * plain JavaScript costs less than the dozen small kernel launches per tensor it replaces, and the
 * moments are directly the checkpointed state. Parameters that receive no gradient in a step are
 * left alone (tf.variableGrads omits them).
 */
export class AdamW {
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  private readonly decays = new Map<string, boolean>();
  private readonly moments = new Map<string, { m: Float32Array; v: Float32Array }>();
  private readonly stepsPerParam = new Map<string, number>();
  private steps = 0;

  constructor(
    private readonly params: Map<string, tf.Variable>,
    options: AdamWOptions = {},
  ) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    const noDecay = options.noDecay ?? ((_: string, v: tf.Variable) => v.rank < 2);
    for (const [name, variable] of params) {
      this.decays.set(name, !noDecay(name, variable));
      this.moments.set(name, { m: new Float32Array(variable.size), v: new Float32Array(variable.size) });
      this.stepsPerParam.set(name, 0);
    }
  }

  get step(): number {
    return this.steps;
  }

  /**
   * One update with learning rate `baseLr` (times `lrScale[name]` where given) from gradients by
   * parameter name, each multiplied by `gradScale` first (gradient clipping, averaging).
   */
  apply(grads: Map<string, Float32Array>, baseLr: number, lrScale?: Map<string, number>, gradScale = 1): void {
    this.steps++;
    const b1 = this.beta1;
    const b2 = this.beta2;
    for (const [name, g] of grads) {
      const param = this.params.get(name);
      if (!param) throw new Error(`AdamW: gradient for unknown parameter '${name}'`);
      if (g.length !== param.size)
        throw new Error(`AdamW: gradient for '${name}' has ${g.length} values, the parameter ${param.size}`);
      const lr = baseLr * (lrScale?.get(name) ?? 1);
      const t = getOrThrow(this.stepsPerParam, name, 'AdamW: steps per parameter') + 1;
      this.stepsPerParam.set(name, t);
      const { m, v } = getOrThrow(this.moments, name, 'AdamW: moments');
      const p = param.dataSync() as Float32Array;
      const next = new Float32Array(p.length);
      const stepSize = lr / (1 - b1 ** t);
      const invSqrtBc2 = 1 / Math.sqrt(1 - b2 ** t);
      const decay = this.decays.get(name) && this.weightDecay > 0 ? 1 - lr * this.weightDecay : 1;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]! * gradScale;
        const mi = b1 * m[i]! + (1 - b1) * gi;
        const vi = b2 * v[i]! + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        next[i] = p[i]! * decay - (stepSize * mi) / (Math.sqrt(vi) * invSqrtBc2 + this.eps);
      }
      tf.tidy(() => param.assign(tf.tensor(next, param.shape)));
    }
  }

  getState(): AdamWState {
    const moments = new Map<string, { m: Float32Array; v: Float32Array }>();
    for (const [name, s] of this.moments) moments.set(name, { m: s.m.slice(), v: s.v.slice() });
    return { step: this.steps, moments };
  }

  /** Per-parameter step counts (they differ from `step` only for parameters that missed updates). */
  getParamSteps(): Record<string, number> {
    return Object.fromEntries(this.stepsPerParam);
  }

  setState(state: AdamWState, paramSteps?: Record<string, number>): void {
    this.steps = state.step;
    for (const [name, variable] of this.params) {
      const s = state.moments.get(name);
      if (!s) throw new Error(`AdamW: the saved state has no moments for '${name}'`);
      if (s.m.length !== variable.size || s.v.length !== variable.size) {
        throw new Error(
          `AdamW: saved moments for '${name}' have ${s.m.length} values, the parameter has ${variable.size}`,
        );
      }
      this.moments.set(name, { m: s.m.slice(), v: s.v.slice() });
      this.stepsPerParam.set(name, paramSteps?.[name] ?? state.step);
    }
  }

  dispose(): void {
    this.moments.clear();
  }
}
