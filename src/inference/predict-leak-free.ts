import { tf } from '../engine/engine.js';
import type { RgbImage } from '../io/image-types.js';
import type { ApeModel, PredictOptions } from './ape-model.js';
import type { Prediction } from './results.js';
import { required } from '../util/checked.js';

/**
 * One image's prediction for processes that serve millions of them (the server's model thread,
 * annotate's model processes), which must not grow by even one tensor per call. On TF.js predict
 * is synchronous, so a tidy scope around it frees whatever it leaves behind; another engine's
 * predict awaits its runner, which no tidy scope can span, and disposes what it hands to the
 * post-processing itself.
 */
export async function predictLeakFree(model: ApeModel, image: RgbImage, options: PredictOptions): Promise<Prediction> {
  if (model.inferenceEngine !== 'tfjs') return model.predict(image, options);
  let prediction: Prediction | undefined;
  tf.tidy(() => {
    prediction = model.predictSync([image], options)[0];
  });
  return required(prediction, 'predictLeakFree: the prediction');
}
