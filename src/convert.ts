/** `ape/convert` (Node): released APE checkpoints (`torch.save` files, read by allow-list) to this project's model folder. */
export { TorchCheckpoint, listTorchCheckpoint, readTorchCheckpoint } from './io/torch/checkpoint.js';
export type {
  TorchTensor,
  TorchTensorInfo,
  TorchCheckpointOptions,
  ReadTorchCheckpointOptions,
  TorchDType,
  TensorData as TorchTensorData,
} from './io/torch/checkpoint.js';
export { convertTorchCheckpoint } from './convert/convert-checkpoint.js';
export type { ConvertCheckpointOptions, ConversionReport, ConversionEntry } from './convert/convert-checkpoint.js';
export {
  releasedTargets,
  releasedLayoutOfKey,
  loadReleasedWeights,
  defaultReleasedLayout,
  convertReleasedTensor,
} from './convert/released-mapping.js';
export type { ReleasedLayout, SourceTensor, LoadReleasedOptions, LoadReport } from './convert/released-mapping.js';
