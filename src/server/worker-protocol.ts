import type { PredictionJson } from '../inference/prediction-json.js';
import type { ExportShape } from '../onnx/export-network.js';

/** Messages between the HTTP thread and the model worker. */

export interface WorkerPredictJob {
  type: 'predict';
  id: number;
  image: { width: number; height: number; data: Uint8Array };
  vocabulary: string[];
  sentences: string[];
  threshold?: number;
  semanticThreshold?: number;
}

/** The vectors of prompt texts, for a page that does not hold the text tower (`POST /v1/prompts`). */
export interface WorkerPromptsJob {
  type: 'prompts';
  id: number;
  texts: string[];
}

/** A prompts job's answer: one vector per text, row after row. */
export interface PromptVectors {
  /** [texts, dim] row-major. */
  vectors: Float32Array;
  dim: number;
  /** How many of the texts the text tower encoded now (the others came from the prompt cache or its store). */
  encoded: number;
}

/** Which export the page asks for: the network's of one shape (`GET /v1/onnx/export`), or the text tower's (`GET /v1/onnx/text`). */
export type ExportRequest = { kind: 'network'; shape: ExportShape } | { kind: 'text' };

/** Find an ONNX export in the model's cache, or make it (for the page). */
export interface WorkerExportJob {
  type: 'export';
  id: number;
  export: ExportRequest;
}

/** An export folder as the worker checked it (ExportFolder, with its files as pairs). */
export interface ExportFolderInfo {
  /** The export's key (its folder's name in the cache): the KEY of /v1/onnx/KEY/FILE. */
  key: string;
  dir: string;
  /** Its manifest's file name (the first of `files`). */
  manifestFile: string;
  /** The model hash its manifest names. */
  modelHash: string;
  files: [string, number][];
}

export interface EngineMemory {
  numTensors: number;
  numBytes: number;
}

export interface ModelInfo {
  name: string;
  /** The model's configuration as loaded (plain JSON). */
  config: unknown;
  /** The TF.js backend (prompt encoding, post-processing; the network too with the tfjs engine). */
  backend: string;
  /** Where the network runs: 'ort' (ONNX Runtime) or 'tfjs'. */
  inferenceEngine: string;
  loadMs: number;
}

export type WorkerRequest = WorkerPredictJob | WorkerExportJob | WorkerPromptsJob;

export type WorkerReply =
  | { type: 'ready'; info: ModelInfo; memory: EngineMemory }
  | { type: 'load-failed'; message: string }
  /** A line worth showing (an ONNX export being made on first use). */
  | { type: 'note'; line: string }
  | { type: 'result'; id: number; json: PredictionJson; inferenceMs: number; memory: EngineMemory }
  | { type: 'error'; id: number; message: string; memory: EngineMemory }
  | { type: 'export-ready'; id: number; folder: ExportFolderInfo; memory: EngineMemory }
  | ({ type: 'vectors'; id: number; memory: EngineMemory } & PromptVectors);
