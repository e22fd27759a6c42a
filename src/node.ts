/** `ape/node`: everything in `ape`, plus what needs Node: image files through sharp, safetensors files, model folders, tokenizer files. */
export * from './index.js';
export { decodeImage, readImage, readGrayPng, encodePng, encodeJpeg, encodeWebp, writeImage } from './io/image-node.js';
export type { ReadImageOptions } from './io/image-node.js';
export { readSafetensorsFile, readSafetensorsHeaderFile, writeSafetensorsFile } from './io/safetensors-node.js';
export { loadModel, saveModel, loadWeights } from './inference/model-files.js';
export type { LoadModelOptions, SaveModelOptions } from './inference/model-files.js';
export { loadClipTokenizer, readClipMergesFile } from './text/clip-vocab-file.js';
