import type { PredictionJson } from '../inference/prediction-json.js';

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

export type WorkerRequest = WorkerPredictJob;

export type WorkerReply =
  | { type: 'ready'; info: ModelInfo; memory: EngineMemory }
  | { type: 'load-failed'; message: string }
  /** A line worth showing (an ONNX export being made on first use). */
  | { type: 'note'; line: string }
  | { type: 'result'; id: number; json: PredictionJson; inferenceMs: number; memory: EngineMemory }
  | { type: 'error'; id: number; message: string; memory: EngineMemory };
