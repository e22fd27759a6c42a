import { tf } from '../engine/engine.js';
import { Module, type Initializer } from '../nn/module.js';
import type { Rng } from '../util/random.js';

type ParamMethod = (
  this: Module,
  name: string,
  shape: number[],
  initializer: Initializer,
  rng: Rng,
  trainable?: boolean,
) => tf.Variable;

/**
 * Names and shapes of the parameters a module tree has, without allocating them: the tree is
 * built with every parameter's initial value replaced by a view of one shared scalar (a tensor
 * of the parameter's shape whose data is never read), so describing APE-D's 1.4 billion
 * parameters takes milliseconds and no memory. This is how the converter learns what a preset
 * expects without building a multi-GB model.
 *
 * Module construction only declares parameters (it never reads their values), which is what makes
 * this sound; `Module.param` keeps its own bookkeeping, only the initializer is swapped, for the
 * duration of the synchronous `build` call. Everything built is disposed before returning.
 */
export function describeParameters(build: () => Module): Map<string, number[]> {
  const proto = Module.prototype as unknown as { param: ParamMethod };
  const original = proto.param;
  const shapes = new Map<string, number[]>();
  const backing = tf.scalar(0);
  const engine = tf.engine();
  const view: Initializer = (shape) => {
    const t = engine.makeTensorFromDataId(backing.dataId, shape, 'float32');
    // A new tensor on existing data holds a reference to it, as every other tensor does.
    engine.backend.incRef(backing.dataId);
    return t;
  };
  proto.param = function (this: Module, name, shape, _initializer, rng, trainable) {
    return original.call(this, name, shape, view, rng, trainable);
  };
  try {
    tf.tidy(() => {
      const module = build();
      try {
        for (const [name, v] of module.namedParameters()) shapes.set(name, [...v.shape]);
      } finally {
        module.dispose();
      }
    });
  } finally {
    proto.param = original;
    backing.dispose();
  }
  return shapes;
}
