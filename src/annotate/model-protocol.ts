import type { InferenceEngineName } from '../inference/model-files.js';
import type { AnnotateSettings, ImageOutcome } from './types.js';

/** Messages between a ModelPool and its model processes (model-process.ts). */

/** What a model process loads (its argv[2], as JSON). */
export interface ModelProcessSpec {
  modelDir: string;
  /** Default loadModel's (ort). */
  engine?: InferenceEngineName;
  /** ONNX Runtime threads per session (default: ONNX Runtime's choice, all cores). */
  threads?: number;
}

export interface ImageTask {
  /** The image's name in messages (its path, or the name the producer gave it). */
  name: string;
  /** Read the image from here... */
  path?: string;
  /** ...or decode these bytes (queue jobs carry the file's bytes). */
  bytes?: Uint8Array;
  settings: AnnotateSettings;
}

export type ToModelProcess =
  | { type: 'image'; id: number; task: ImageTask }
  /** Put these prompts' vectors in the prompt cache and its store, encoding the new ones. */
  | { type: 'prompts'; id: number; texts: string[] };

export type FromModelProcess =
  | { type: 'ready'; loadMs: number }
  | { type: 'load-failed'; message: string }
  /** A line worth showing (an ONNX export being made on first use). */
  | { type: 'note'; line: string }
  | { type: 'done'; id: number; outcome: ImageOutcome; ms: number }
  /** Progress of a 'prompts' job: new prompts encoded so far of `total`. */
  | { type: 'encoding'; id: number; done: number; total: number }
  /** A 'prompts' job is done (`error`: why it failed). */
  | { type: 'prompts-ready'; id: number; error?: string };
