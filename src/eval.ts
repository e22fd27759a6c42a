/** `ape/eval` (Node for evaluateModel): COCO AP identical to pycocotools, semantic mIoU, referring precision, whole-model evaluation. */
export * from './evaluation/coco/types.js';
export { parseCocoGroundTruth, parseCocoResults, CocoFormatError } from './evaluation/coco/parse.js';
export { evaluateCoco } from './evaluation/coco/evaluate.js';
export type { CocoEvaluateOptions, CocoEvaluation, CocoCategoryAp } from './evaluation/coco/evaluate.js';
export { COCO_STAT_NAMES } from './evaluation/coco/summarize.js';
export type { CocoEvalParams } from './evaluation/coco/params.js';
export * from './evaluation/semantic.js';
export * from './evaluation/referring.js';
export { evaluateModel } from './evaluation/model-eval.js';
export type { ModelEvalResult, ModelEvalOptions } from './evaluation/model-eval.js';
