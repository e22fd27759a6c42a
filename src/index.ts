/** The library's public surface. */
export { initEngine, tf } from './engine/engine.js';
export type { BackendName, EngineOptions } from './engine/engine.js';
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
export * from './evaluation/coco/types.js';
export { parseCocoGroundTruth, parseCocoResults, CocoFormatError } from './evaluation/coco/parse.js';
export { evaluateCoco } from './evaluation/coco/evaluate.js';
export type { CocoEvaluateOptions, CocoEvaluation, CocoCategoryAp } from './evaluation/coco/evaluate.js';
export { COCO_STAT_NAMES } from './evaluation/coco/summarize.js';
export type { CocoEvalParams } from './evaluation/coco/params.js';
