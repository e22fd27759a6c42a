/**
 * `ape`: the platform-neutral surface (no Node built-ins below it; the browser bundle imports only
 * this side): the engine, structures, text, the model and predict, the wire format, drawing.
 * Files, sharp and model folders are in `ape/node` (src/node.ts); training, evaluation, the HTTP
 * server and released-weight conversion have their own entries (src/train.ts, src/eval.ts,
 * src/server.ts, src/convert.ts).
 */
export { initEngine, tf } from './engine/engine.js';
export type { BackendName, EngineOptions } from './engine/engine.js';
export { msDeformAttn } from './engine/ms-deform-attn.js';
export * from './structures/boxes.js';
export * from './structures/box-iou.js';
export * from './structures/box-tensors.js';
export * from './structures/nms.js';
export * from './structures/rle.js';
export * from './structures/rle-string.js';
export * from './structures/rle-merge.js';
export * from './structures/rle-iou.js';
export * from './structures/polygon.js';
export * from './structures/segmentation.js';
export * from './structures/bitmap.js';
export * from './structures/components.js';
export { ImageError, DEFAULT_MAX_PIXELS, imageChannels, toRgb } from './io/image-types.js';
export type { RgbImage, GrayImage, ImageFormat, ImageErrorReason, DecodeOptions } from './io/image-types.js';
export { sniffImageFormat, inspectImage } from './io/image-header.js';
export type { ImageHeader } from './io/image-header.js';
export {
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
  encodeSafetensorsParts,
  toFloat32,
  SafetensorsError,
} from './io/safetensors.js';
export type {
  SafetensorsDtype,
  SafetensorsEntry,
  SafetensorsFile,
  SafetensorsInput,
  SafetensorsHeader,
  SafetensorsTensorInfo,
  TensorData as SafetensorsTensorData,
} from './io/safetensors.js';
export { ClipTokenizer, bytesToUnicode, CLIP_MERGE_COUNT } from './text/clip-tokenizer.js';
export type { ClipTokenizerOptions } from './text/clip-tokenizer.js';
export { clipCleanText, fixText, whitespaceClean } from './text/text-cleaning.js';
export { frameTokens } from './text/tokenizer.js';
export type { TextTokenizer } from './text/tokenizer.js';
export { ClipTextEncoder, eva02ClipBigETextConfig, tinyTextConfig } from './text/clip-text-transformer.js';
export type {
  ClipTextConfig,
  ClipTextOutput,
  ClipTextForwardOptions,
  TextPooling,
} from './text/clip-text-transformer.js';
export { WordTokenizer } from './text/word-tokenizer.js';
export type { WordTokenizerJson } from './text/word-tokenizer.js';
export { parsePromptString, promptEntries } from './text/prompts.js';
export type { PromptSet, PromptEntry, PromptKind } from './text/prompts.js';
export { PromptEmbeddingCache } from './text/prompt-embeddings.js';
export {
  Eva02Vit,
  Eva02Block,
  Eva02Attention,
  PatchEmbed,
  EVA02_VIT_PRESETS,
  apeDVitConfig,
  apeTiVitConfig,
  tinyVitConfig,
  swigluHidden,
  validateVitConfig,
} from './modeling/backbone/eva02-vit.js';
export type { Eva02VitConfig, VitForwardOptions } from './modeling/backbone/eva02-vit.js';
export { SimpleFeaturePyramid, apePyramidConfig } from './modeling/backbone/simple-feature-pyramid.js';
export type { SimpleFeaturePyramidConfig } from './modeling/backbone/simple-feature-pyramid.js';
export { APE_PRESETS, apeDConfig, apeTiConfig, tinyConfig, validateConfig, pyramidLevels } from './modeling/config.js';
export type {
  ApeConfig,
  ApePresetName,
  ApeTextConfig,
  ApeInferenceConfig,
  TokenizerConfig,
} from './modeling/config.js';
export { ApeNetwork } from './modeling/ape-network.js';
export type {
  ModelBatch,
  PromptInput,
  FusionMode,
  ForwardOptions,
  ForwardTimings,
  LayerOutput,
  ApeRawOutput,
} from './modeling/ape-network.js';
export type { EncoderProposals } from './modeling/deformable/transformer.js';
export { ApeModel } from './inference/ape-model.js';
export type { PredictOptions, PredictTimings } from './inference/ape-model.js';
export type { Prediction, InstanceResult, SemanticResult, GroundingResult, PredictTask } from './inference/results.js';
export { createModel, resolveConfig } from './inference/create-model.js';
export type { CreateModelOptions } from './inference/create-model.js';
export { parseModelConfig, checkWeights, tokenizerFileName } from './inference/model-folder.js';
export { prepareImages, resizedSize } from './inference/preprocess.js';
export type { ImagePlacement } from './inference/preprocess.js';
export { toCocoResults, predictionToJson, predictionFromJson, semanticToJson } from './inference/prediction-json.js';
export type {
  PredictionJson,
  CocoInstanceJson,
  SemanticJson,
  SemanticSegmentJson,
  GroundingJson,
} from './inference/prediction-json.js';
export * from './viz/api.js';
export {
  RELEASED_MODELS,
  APE_HUB_REPO,
  findReleasedModel,
  releasedModel,
  releasedConfig,
  UnsupportedModelError,
} from './inference/released-models.js';
export type { ReleasedModel } from './inference/released-models.js';
export { unknownWords, vocabularyWarnings } from './text/prompt-vocabulary.js';
export { DEFAULT_SEMANTIC_THRESHOLD, semanticConfidence } from './inference/semantic-confidence.js';
