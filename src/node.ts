/** `ape/node`: everything in `ape`, plus what needs Node: image files through sharp, safetensors files, model folders, tokenizer files. */
export * from './index.js';
export { decodeImage, readImage, readGrayPng, encodePng, encodeJpeg, encodeWebp, writeImage } from './io/image-node.js';
export type { ReadImageOptions } from './io/image-node.js';
export { readSafetensorsFile, readSafetensorsHeaderFile, writeSafetensorsFile } from './io/safetensors-node.js';
export { loadModel, saveModel, loadWeights } from './inference/model-files.js';
export { writeHalfModel, type HalfModel } from './inference/half-model.js';
export type { LoadModelOptions, SaveModelOptions } from './inference/model-files.js';
export { loadClipTokenizer, readClipMergesFile } from './text/clip-vocab-file.js';
// Released models by name: the hub download, the cache and the conversion into a model folder.
export { pullModel, apeHome, releasedModelDir } from './inference/model-hub.js';
export type { PullOptions, PullResult } from './inference/model-hub.js';
export { convertCheckpointToFolder, presetParameterShapes } from './inference/convert-released.js';
export type { ConvertToFolderOptions } from './inference/convert-released.js';
export { downloadHubFile, hubFileUrl, HubDownloadError, DEFAULT_HF_ENDPOINT } from './io/hub/hub-download.js';
export type { HubFileRef, HubDownloadOptions, HubDownloadResult } from './io/hub/hub-download.js';
export { BUNDLED_CLIP_VOCAB } from './text/bundled-vocab.js';
