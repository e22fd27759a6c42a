/** The synthetic world's public surface (re-exported by src/train.ts). */
export {
  SYNTH_CATEGORIES,
  THING_SHAPES,
  STUFF_KINDS,
  THING_COLORS,
  THING_COLOR_NAMES,
  THING_SIZES,
  IGNORE_LABEL,
  categoryId,
  categoryById,
} from './categories.js';
export type { SynthCategory, ThingShape, StuffKind, ThingColor, ThingSize, CategoryName } from './categories.js';
export { generateScene, DEFAULT_SYNTH_CONFIG } from './scene.js';
export type { SynthConfig, Scene, SceneThing, SceneStuff } from './scene.js';
export { writeSynthDataset, sceneRng, resolveSynthConfig } from './write-dataset.js';
export type { SynthDatasetOptions, SynthDatasetSummary } from './write-dataset.js';
export { writeMissingSynthFolders } from './prepare.js';
export type { SynthFolderSpec } from './prepare.js';
export { checkDataset } from './checker.js';
export type { CheckReport, CheckOptions, DatasetStats } from './checker.js';
export { formatIssue } from './check-issues.js';
export type { CheckIssue } from './check-issues.js';
export { DATASET_FILES, imageFileName } from './formats.js';
export type {
  CocoImage as SynthImageRecord,
  CocoAnnotation as SynthAnnotation,
  InstanceAnnotation,
  GroundingAnnotation,
  GroundingSentence,
  InstancesFile,
  GroundingFile,
  SegmentsFile,
  SemanticIndexFile,
} from './formats.js';
export {
  parseQuery,
  renderQuery,
  renderRaw,
  normalizeSentence,
  resolveQuery,
  referringVocabulary,
  SENTENCE_KINDS,
} from './referring.js';
export type { RefQuery, SceneGraph, SentenceKind, Resolution } from './referring.js';
export { buildSceneGraph } from './scene-graph.js';
export { renderDatasetPreview } from './preview.js';
