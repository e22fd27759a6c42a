import { DEFAULT_ENGINE, INFERENCE_ENGINES, type InferenceEngineName } from '../inference/model-files.js';
import { UsageError } from './command.js';

/** `--engine NAME`: ort or tfjs, loadModel's default (ort) when not given; any other name is refused. */
export function engineOption(value: string | undefined): InferenceEngineName {
  const engine = value ?? DEFAULT_ENGINE;
  if (!(INFERENCE_ENGINES as readonly string[]).includes(engine)) {
    throw new UsageError(
      `--engine ${engine}: not an engine this command runs on; available: ${INFERENCE_ENGINES.join(', ')}`,
    );
  }
  return engine as InferenceEngineName;
}
