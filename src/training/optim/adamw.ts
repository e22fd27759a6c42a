import { tf } from '../../engine/engine.js';

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
 * (sqrt(v)/sqrt(bc2) + eps). Its state is named like the parameters so checkpoints can hold it.
 * Parameters that receive no gradient in a step are left alone (tf.variableGrads omits them).
 */
export class AdamW {
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  private readonly decays = new Map<string, boolean>();
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
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
      this.m.set(name, tf.variable(tf.zerosLike(variable), false));
      this.v.set(name, tf.variable(tf.zerosLike(variable), false));
      this.stepsPerParam.set(name, 0);
    }
  }

  get step(): number {
    return this.steps;
  }

  /**
   * One update with learning rate `lr` (times `lrScale[name]` where given); `grads` by parameter
   * name (missing ones are skipped).
   */
  apply(grads: Map<string, tf.Tensor>, baseLr: number, lrScale?: Map<string, number>): void {
    this.steps++;
    for (const [name, grad] of grads) {
      const param = this.params.get(name);
      if (!param) throw new Error(`AdamW: gradient for unknown parameter '${name}'`);
      const lr = baseLr * (lrScale?.get(name) ?? 1);
      const t = this.stepsPerParam.get(name)! + 1;
      this.stepsPerParam.set(name, t);
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      tf.tidy(() => {
        const mNew = tf.add(tf.mul(m, tf.scalar(this.beta1)), tf.mul(grad, tf.scalar(1 - this.beta1)));
        const vNew = tf.add(tf.mul(v, tf.scalar(this.beta2)), tf.mul(tf.square(grad), tf.scalar(1 - this.beta2)));
        const bc1 = 1 - this.beta1 ** t;
        const bc2 = 1 - this.beta2 ** t;
        const denom = tf.add(tf.div(tf.sqrt(vNew), tf.scalar(Math.sqrt(bc2))), tf.scalar(this.eps));
        let next = tf.sub(param, tf.mul(tf.div(mNew, denom), tf.scalar(lr / bc1)));
        if (this.decays.get(name) && this.weightDecay > 0) next = tf.sub(next, tf.mul(param, tf.scalar(lr * this.weightDecay)));
        m.assign(mNew);
        v.assign(vNew);
        param.assign(next);
      });
    }
  }

  getState(): AdamWState {
    const moments = new Map<string, { m: Float32Array; v: Float32Array }>();
    for (const name of this.params.keys()) {
      moments.set(name, { m: this.m.get(name)!.dataSync() as Float32Array, v: this.v.get(name)!.dataSync() as Float32Array });
    }
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
        throw new Error(`AdamW: saved moments for '${name}' have ${s.m.length} values, the parameter has ${variable.size}`);
      }
      this.m.get(name)!.assign(tf.tensor(s.m, variable.shape));
      this.v.get(name)!.assign(tf.tensor(s.v, variable.shape));
      this.stepsPerParam.set(name, paramSteps?.[name] ?? state.step);
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}
