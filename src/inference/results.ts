import type { CompressedRle } from '../structures/rle.js';
import type { PromptEntry, PromptKind } from '../text/prompts.js';

/**
 * The lowest instance score `ape predict`, the HTTP API and the web page keep unless told
 * otherwise. The library's `predict` keeps the config's threshold (0: every instance, as
 * evaluation needs).
 */
export const DEFAULT_SCORE_THRESHOLD = 0.3;

export type PredictTask = 'instances' | 'semantic' | 'grounding';

/** One detected object (or region, or part) that a prompt names. */
export interface InstanceResult {
  /** The prompt text. */
  prompt: string;
  /** Index of the prompt in the combined list (vocabulary first, then sentences). */
  promptIndex: number;
  kind: PromptKind;
  /** Sigmoid of the region-prompt logit. */
  score: number;
  /** [x1, y1, x2, y2] in pixels of the original image. */
  box: [number, number, number, number];
  /** Binary mask at the original image size (COCO compressed RLE), or null when masks are off. */
  mask: CompressedRle | null;
  /** The decoder query it came from. */
  query: number;
}

/** Per-pixel prompt labels from accumulating every query's mask, weighted by its prompt scores. */
export interface SemanticResult {
  width: number;
  height: number;
  /** Row-major labels: a prompt index into `prompts`, or -1 where the background channel wins. */
  labels: Int32Array;
  /** Shared by the predictions of one vocabulary and frozen (a list of 100,000 names is made once). */
  prompts: readonly string[];
}

/** The best object for one sentence. */
export interface GroundingResult {
  sentence: string;
  promptIndex: number;
  score: number;
  box: [number, number, number, number];
  mask: CompressedRle | null;
  query: number;
}

export interface Prediction {
  width: number;
  height: number;
  /** Shared by the predictions of one prompt list and frozen, as the semantic result's `prompts`. */
  prompts: readonly PromptEntry[];
  instances: InstanceResult[];
  semantic: SemanticResult | null;
  grounding: GroundingResult[];
  /** Problems with the prompts the caller should see (words outside the model's vocabulary). */
  warnings: string[];
}
