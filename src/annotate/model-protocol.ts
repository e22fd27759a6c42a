import type { AnnotateSettings, ImageOutcome } from './types.js';

/** Messages between a ModelPool and its model processes (model-process.ts). */

export interface ImageTask {
  /** The image's name in messages (its path, or the name the producer gave it). */
  name: string;
  /** Read the image from here... */
  path?: string;
  /** ...or decode these bytes (queue jobs carry the file's bytes). */
  bytes?: Uint8Array;
  settings: AnnotateSettings;
}

export type ToModelProcess = { type: 'image'; id: number; task: ImageTask };

export type FromModelProcess =
  | { type: 'ready'; loadMs: number }
  | { type: 'load-failed'; message: string }
  | { type: 'done'; id: number; outcome: ImageOutcome; ms: number };
