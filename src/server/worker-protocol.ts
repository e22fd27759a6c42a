import type { PredictionJson } from '../inference/prediction-json.js';
import type { ExportShape, OnnxExportManifest } from '../onnx/export-network.js';

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

/** Find the ONNX export of one shape in the model's cache, or make it (for the page: `GET /v1/onnx/export`). */
export interface WorkerExportJob {
  type: 'export';
  id: number;
  shape: ExportShape;
}

/** An export folder as the worker checked it (ExportFolder, with its files as pairs). */
export interface ExportFolderInfo {
  dir: string;
  manifest: OnnxExportManifest;
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

export type WorkerRequest = WorkerPredictJob | WorkerExportJob;

export type WorkerReply =
  | { type: 'ready'; info: ModelInfo; memory: EngineMemory }
  | { type: 'load-failed'; message: string }
  /** A line worth showing (an ONNX export being made on first use). */
  | { type: 'note'; line: string }
  | { type: 'result'; id: number; json: PredictionJson; inferenceMs: number; memory: EngineMemory }
  | { type: 'error'; id: number; message: string; memory: EngineMemory }
  | { type: 'export-ready'; id: number; folder: ExportFolderInfo; memory: EngineMemory };
