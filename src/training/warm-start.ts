import { tf } from '../engine/engine.js';
import type { TrainingCheckpoint } from './checkpoint.js';

/**
 * Starts a new run's weights from another run's checkpoint (detectron2's MODEL.WEIGHTS): every
 * checkpoint parameter must be a model parameter of the same shape, so a renamed or resized
 * module is an error rather than a silent re-initialisation. Model parameters the checkpoint
 * lacks (modules added since) keep their initialisation; their names are returned.
 */
export function assignCheckpointWeights(
  params: ReadonlyMap<string, tf.Variable>,
  checkpoint: Pick<TrainingCheckpoint, 'params'>,
  source: string,
): string[] {
  for (const [name, saved] of checkpoint.params) {
    const v = params.get(name);
    if (!v) throw new Error(`${source}: parameter '${name}' is not in the model being trained`);
    if (saved.shape.length !== v.shape.length || saved.shape.some((d, i) => d !== v.shape[i])) {
      throw new Error(
        `${source}: parameter '${name}' has shape [${saved.shape.join(', ')}], the model needs [${v.shape.join(', ')}]`,
      );
    }
  }
  const fresh: string[] = [];
  for (const [name, v] of params) {
    const saved = checkpoint.params.get(name);
    if (!saved) {
      fresh.push(name);
      continue;
    }
    const value = tf.tensor(saved.data, v.shape, 'float32');
    v.assign(value);
    value.dispose();
  }
  return fresh;
}
