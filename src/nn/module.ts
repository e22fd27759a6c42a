import { tf } from '../engine/engine.js';
import type { Rng } from '../util/random.js';

/** Makes a parameter's initial value from its shape and the module's seeded generator. */
export type Initializer = (shape: number[], rng: Rng) => tf.Tensor;

export const init = {
  zeros: (): Initializer => (shape) => tf.zeros(shape),
  ones: (): Initializer => (shape) => tf.ones(shape),
  constant:
    (value: number): Initializer =>
    (shape) =>
      tf.fill(shape, value),
  normal:
    (std: number): Initializer =>
    (shape, rng) =>
      tf.randomNormal(shape, 0, std, 'float32', rng.seed()),
  truncatedNormal:
    (std: number): Initializer =>
    (shape, rng) =>
      tf.truncatedNormal(shape, 0, std, 'float32', rng.seed()),
  uniform:
    (limit: number): Initializer =>
    (shape, rng) =>
      tf.randomUniform(shape, -limit, limit, 'float32', rng.seed()),
  /** Glorot uniform; fans from a [..., in, out] weight (the layout used for Linear and Conv2d here). */
  xavierUniform: (): Initializer => (shape, rng) => {
    const receptive = shape.slice(0, -2).reduce((a, b) => a * b, 1);
    const fanIn = shape[shape.length - 2]! * receptive;
    const fanOut = shape[shape.length - 1]! * receptive;
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    return tf.randomUniform(shape, -limit, limit, 'float32', rng.seed());
  },
  /** PyTorch's default for Linear/Conv weights (kaiming uniform with a = sqrt(5)): U(±1/sqrt(fanIn)). */
  torchDefault: (): Initializer => (shape, rng) => {
    const fanIn = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const limit = 1 / Math.sqrt(fanIn);
    return tf.randomUniform(shape, -limit, limit, 'float32', rng.seed());
  },
};

/**
 * How parameters start: from their initializer (the default), as zeros (no random numbers: for a
 * model whose every weight is assigned from a file right after), or as empty placeholders (shape
 * [0], no memory: for parts of a model that get no weights at all, such as the detector of the
 * page's prompt side, whose forward runs as ONNX graphs; a forward through a placeholder fails on
 * its shape instead of computing with invented weights).
 */
export type ParameterValues = 'initialized' | 'zeros' | 'placeholder';

/** Open withParameterValues scopes, innermost last. */
const valueScopes: ParameterValues[] = [];
const placeholders = new WeakSet<tf.Variable>();

/** Runs `make` (module constructors) with parameters made as `values` says (the innermost scope wins). */
export function withParameterValues<T>(values: ParameterValues, make: () => T): T {
  valueScopes.push(values);
  try {
    return make();
  } finally {
    valueScopes.pop();
  }
}

/** Whether a parameter was made as a placeholder (withParameterValues): it has no weights. */
export function isPlaceholder(variable: tf.Variable): boolean {
  return placeholders.has(variable);
}

/**
 * A tree of named parameters, like torch.nn.Module: parameter names are dotted paths
 * (`blocks.0.attn.q_proj.weight`) so that checkpoints map by name. Weights of linear layers are
 * stored [in, out] (TF.js matMul order), the transpose of PyTorch's layout.
 */
export abstract class Module {
  private readonly ownParams = new Map<string, tf.Variable>();
  private readonly ownChildren = new Map<string, Module>();

  protected param(name: string, shape: number[], initializer: Initializer, rng: Rng, trainable = true): tf.Variable {
    if (this.ownParams.has(name) || this.ownChildren.has(name)) throw new Error(`Module: duplicate name '${name}'`);
    const values = valueScopes[valueScopes.length - 1] ?? 'initialized';
    const value =
      values === 'initialized'
        ? tf.tidy(() => initializer(shape, rng))
        : values === 'zeros'
          ? tf.zeros(shape)
          : tf.zeros([0]);
    const variable = tf.variable(value, values === 'placeholder' ? false : trainable);
    value.dispose();
    if (values === 'placeholder') placeholders.add(variable);
    this.ownParams.set(name, variable);
    return variable;
  }

  protected child<M extends Module>(name: string, module: M): M {
    if (this.ownParams.has(name) || this.ownChildren.has(name)) throw new Error(`Module: duplicate name '${name}'`);
    this.ownChildren.set(name, module);
    return module;
  }

  /** A list of modules registered as children `name.0`, `name.1`, ... */
  protected childList<M extends Module>(name: string, modules: M[]): M[] {
    const holder = new ModuleList(modules);
    this.child(name, holder);
    return modules;
  }

  /** Every parameter below this module, by dotted name, in registration order. */
  namedParameters(prefix = ''): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [name, v] of this.ownParams) out.set(prefix + name, v);
    for (const [name, m] of this.ownChildren) {
      for (const [sub, v] of m.namedParameters(`${prefix}${name}.`)) out.set(sub, v);
    }
    return out;
  }

  trainableVariables(): tf.Variable[] {
    return [...this.namedParameters().values()].filter((v) => v.trainable);
  }

  parameterCount(): number {
    let n = 0;
    for (const v of this.namedParameters().values()) n += v.size;
    return n;
  }

  dispose(): void {
    for (const v of this.namedParameters().values()) v.dispose();
  }
}

export class ModuleList<M extends Module> extends Module {
  constructor(readonly items: M[]) {
    super();
    items.forEach((m, i) => this.child(String(i), m));
  }
}
