import type { GroundingResult, InstanceResult, Prediction, SemanticResult } from './results.js';
import type { CompressedRle } from '../structures/rle.js';
import { decodeRle, encodeRle } from '../structures/rle.js';
import { compressRle, decompressRle } from '../structures/rle-string.js';
import { xywhToXyxy, xyxyToXywh } from '../structures/boxes.js';
import type { PromptKind } from '../text/prompts.js';

/**
 * The one JSON form of a prediction, written by `ape predict` (NAME.json), answered by the HTTP
 * API and read back by the web page. Instances are COCO results (category_id = prompt index,
 * xywh bbox, compressed RLE) with the prompt's text and kind alongside.
 */
export interface CocoInstanceJson {
  image_id: number;
  /** The prompt index (vocabulary first, then sentences). */
  category_id: number;
  /** [x, y, width, height] in pixels. */
  bbox: [number, number, number, number];
  score: number;
  segmentation?: CompressedRle;
  prompt: string;
  kind: PromptKind;
  /** Decoder query the instance came from (tells a grounding result that is also an instance). */
  query: number;
}

export interface SemanticSegmentJson {
  promptIndex: number;
  prompt: string;
  /** Pixels this prompt won. */
  area: number;
  segmentation: CompressedRle;
}

export interface SemanticJson {
  width: number;
  height: number;
  prompts: string[];
  /** One region per prompt that won any pixel; pixels in none of them are background. */
  segments: SemanticSegmentJson[];
}

export interface GroundingJson {
  sentence: string;
  promptIndex: number;
  score: number;
  bbox: [number, number, number, number];
  segmentation?: CompressedRle;
  query: number;
}

export interface PredictionJson {
  image: { width: number; height: number; id: number; file?: string };
  prompts: { index: number; text: string; kind: PromptKind }[];
  instances: CocoInstanceJson[];
  semantic: SemanticJson | null;
  grounding: GroundingJson[];
  /** Problems with the prompts (words outside the model's vocabulary); empty when none. */
  warnings: string[];
  /** Milliseconds spent in each stage (server: decode, queue, inference, total). */
  timing?: Record<string, number>;
}

const round = (v: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
};

function xywh(box: readonly [number, number, number, number]): [number, number, number, number] {
  const [x, y, w, h] = xyxyToXywh(box);
  return [round(x, 2), round(y, 2), round(w, 2), round(h, 2)];
}

/** The prediction's instances as COCO results for image `imageId` (plus prompt text, kind and query). */
export function toCocoResults(prediction: Prediction, imageId: number): CocoInstanceJson[] {
  return prediction.instances.map((inst) => ({
    image_id: imageId,
    category_id: inst.promptIndex,
    bbox: xywh(inst.box),
    score: round(inst.score, 5),
    ...(inst.mask ? { segmentation: inst.mask } : {}),
    prompt: inst.prompt,
    kind: inst.kind,
    query: inst.query,
  }));
}

/** Per-prompt regions of a label map, as compressed RLE. */
export function semanticToJson(semantic: SemanticResult): SemanticJson {
  const { width, height, labels } = semantic;
  const present = new Set<number>();
  for (let i = 0; i < labels.length; i++) if (labels[i]! >= 0) present.add(labels[i]!);
  const mask = new Uint8Array(width * height);
  const segments = [...present]
    .sort((a, b) => a - b)
    .map((promptIndex) => {
      let area = 0;
      for (let i = 0; i < labels.length; i++) {
        const inside = labels[i] === promptIndex ? 1 : 0;
        mask[i] = inside;
        area += inside;
      }
      return {
        promptIndex,
        prompt: semantic.prompts[promptIndex] ?? '',
        area,
        segmentation: compressRle(encodeRle(mask, height, width)),
      };
    });
  return { width, height, prompts: [...semantic.prompts], segments };
}

export function predictionToJson(prediction: Prediction, image: { id?: number; file?: string } = {}): PredictionJson {
  const id = image.id ?? 0;
  return {
    image: {
      width: prediction.width,
      height: prediction.height,
      id,
      ...(image.file !== undefined ? { file: image.file } : {}),
    },
    prompts: prediction.prompts.map((p) => ({ index: p.index, text: p.text, kind: p.kind })),
    instances: toCocoResults(prediction, id),
    semantic: prediction.semantic ? semanticToJson(prediction.semantic) : null,
    grounding: prediction.grounding.map((g) => ({
      sentence: g.sentence,
      promptIndex: g.promptIndex,
      score: round(g.score, 5),
      bbox: xywh(g.box),
      ...(g.mask ? { segmentation: g.mask } : {}),
      query: g.query,
    })),
    warnings: [...prediction.warnings],
  };
}

/** Reads the JSON form back into a Prediction (for drawing; boxes and scores are as rounded). */
export function predictionFromJson(json: PredictionJson): Prediction {
  const { width, height } = json.image;
  const instances: InstanceResult[] = json.instances.map((inst) => ({
    prompt: inst.prompt,
    promptIndex: inst.category_id,
    kind: inst.kind,
    score: inst.score,
    box: xywhToXyxy(inst.bbox),
    mask: inst.segmentation ?? null,
    query: inst.query,
  }));
  let semantic: SemanticResult | null = null;
  if (json.semantic) {
    const labels = new Int32Array(json.semantic.width * json.semantic.height).fill(-1);
    for (const segment of json.semantic.segments) {
      const pixels = decodeRle(decompressRle(segment.segmentation));
      if (pixels.length !== labels.length)
        throw new Error(`semantic segment '${segment.prompt}': mask size differs from the map`);
      for (let i = 0; i < pixels.length; i++) if (pixels[i]) labels[i] = segment.promptIndex;
    }
    semantic = { width: json.semantic.width, height: json.semantic.height, labels, prompts: json.semantic.prompts };
  }
  const grounding: GroundingResult[] = json.grounding.map((g) => ({
    sentence: g.sentence,
    promptIndex: g.promptIndex,
    score: g.score,
    box: xywhToXyxy(g.bbox),
    mask: g.segmentation ?? null,
    query: g.query,
  }));
  // JSON written before warnings existed has none.
  return {
    width,
    height,
    prompts: json.prompts.map((p) => ({ ...p })),
    instances,
    semantic,
    grounding,
    warnings: [...(json.warnings ?? [])],
  };
}
