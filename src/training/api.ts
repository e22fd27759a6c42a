/** The training side's public surface: datasets, samples, objective, optimizer, runs (re-exported by src/train.ts). */
export { readCocoInstances, parseCocoInstances } from '../data/readers/coco.js';
export type { CocoReadOptions } from '../data/readers/coco.js';
export { readSegments } from '../data/readers/segments.js';
export { readSemanticFolders, readSemanticIndex } from '../data/readers/semantic.js';
export { DatasetFormatError, readJsonFile } from '../data/readers/json-file.js';
export type { DatasetKind, DatasetRecords, ImageRecord, AnnotationRecord, CategoryRecord } from '../data/types.js';
export { TrainingDataset } from '../data/dataset.js';
export { openDataset } from '../data/open-dataset.js';
export type { DatasetSpec } from '../data/open-dataset.js';
export type { Sample, SampleInstance } from '../data/sample.js';
export { loadSample, DEFAULT_LOAD_OPTIONS } from '../data/mappers/load-sample.js';
export type { LoadOptions } from '../data/mappers/load-sample.js';
export { augmentSample, flipSample, cropSample, resizeSample } from '../data/mappers/augment.js';
export type { AugmentOptions } from '../data/mappers/augment.js';
export { swapLeftRight, hasOrdinalWord } from '../data/mappers/sentence-words.js';
export { selectGroundingPhrases } from '../data/mappers/grounding-sample.js';
export { federatedPromptWeights, federatedWeightsFromCounts } from '../data/mappers/federated.js';
export { collateBatch } from '../data/batch.js';
export type { TrainingBatch, ImageTargets } from '../data/batch.js';
export { MultiDatasetSampler } from '../data/sampler/multi-dataset-sampler.js';
export type { SamplerSource, SamplerState, SamplerDraw } from '../data/sampler/multi-dataset-sampler.js';
export { defaultLossSwitches } from '../data/sampler/loss-switches.js';
export type { LossSwitches } from '../data/sampler/loss-switches.js';
export { linearSumAssignment } from './assign/hungarian.js';
export type { Assignment } from './assign/hungarian.js';
export { hungarianMatch } from './assign/hungarian-matcher.js';
export type { MatchIndices } from './assign/hungarian-matcher.js';
export { matchCostMatrix, DEFAULT_MATCH_COST } from './assign/match-cost.js';
export type { MatchCostWeights } from './assign/match-cost.js';
export { iouAssign, decoderAssignOptions, encoderAssignOptions } from './assign/deta-assigner.js';
export type { IouAssignOptions } from './assign/deta-assigner.js';
export { sigmoidFocalLoss, sigmoidFocalElementwise, bceWithLogits } from './losses/focal.js';
export { boxL1Loss, giouLoss } from './losses/box.js';
export { maskBceLoss, diceLoss } from './losses/mask.js';
export { computeLosses, DEFAULT_CRITERION } from './criterion.js';
export type {
  CriterionConfig,
  LossWeights,
  LossResult,
  TrainingPredictions,
  DecoderLayerPredictions,
  EncoderPredictions,
} from './criterion.js';
export { NegativeBank } from './negative-bank.js';
export { AdamW } from './optim/adamw.js';
export type { AdamWOptions, AdamWState } from './optim/adamw.js';
export { learningRateAt } from './optim/schedule.js';
export type { ScheduleConfig } from './optim/schedule.js';
export { saveCheckpoint, loadCheckpoint, loadLatestCheckpoint, listCheckpoints } from './checkpoint.js';
export type { TrainingCheckpoint, CheckpointFormat } from './checkpoint.js';
export { compactCheckpoint } from './compact-checkpoint.js';
export type { CompactedCheckpoint } from './compact-checkpoint.js';
export { loadTrainConfig, parseTrainConfig, DEFAULT_TRAIN_CONFIG, ConfigError } from './config.js';
export type { TrainConfig, DatasetConfig } from './config.js';
export { Trainer } from './trainer.js';
export type { StepReport } from './trainer.js';
export { batchGradients } from './batch-gradients.js';
export type { MicroBatchResult, NegativeEmbeddings } from './batch-gradients.js';
export { runTraining } from './run.js';
export type { RunOptions } from './run.js';
export { evaluateModel } from '../evaluation/model-eval.js';
export type { ModelEvalResult, ModelEvalOptions } from '../evaluation/model-eval.js';
